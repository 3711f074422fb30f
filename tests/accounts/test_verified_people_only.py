"""An API sign-up is a verified person's only once they follow the mailed link: until then
its key does not work and its login is refused, and an address answers alike whether or not
it has an account."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import ApiKey, User
from accounts.services import user_signup
from tests.conftest import PASSWORD, Person, follow_verification_link
from web.adapter import AccountAdapter

pytestmark = pytest.mark.django_db

ERIN = "erin@example.com"


def sign_up(email: str = ERIN, password: str = PASSWORD) -> dict[str, str]:
    response = APIClient().post(
        "/api/v1/signup", {"email": email, "password": password}, format="json"
    )
    assert response.status_code == 201, response.content
    return response.json()


def with_key(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def log_in(email: str = ERIN, password: str = PASSWORD) -> tuple[Client, object]:
    client = Client()
    response = client.post(
        "/api/v1/login", {"email": email, "password": password}, content_type="application/json"
    )
    return client, response


def test_the_signup_key_is_refused_until_the_mailed_link_is_followed() -> None:
    secret = sign_up()["api_key"]
    refused = with_key(secret).get("/api/v1/me")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_api_key"
    assert with_key(secret).post("/api/v1/generations", {"prompt": "a cat"}).status_code == 401

    follow_verification_link(ERIN)
    assert with_key(secret).get("/api/v1/me").json()["email"] == ERIN


def test_the_api_sends_the_same_verification_mail_as_the_web_signup() -> None:
    sign_up()
    Client().post(
        "/accounts/signup/",
        {"email": "frank@example.com", "password1": PASSWORD, "password2": PASSWORD},
    )
    api_mail, web_mail = mail.outbox
    assert api_mail.to == [ERIN] and web_mail.to == ["frank@example.com"]
    assert api_mail.subject == web_mail.subject

    # the same template: the same text but for the address and the link
    def template(body: str) -> str:
        body = re.sub(r"https?://\S+/accounts/confirm-email/\S+/", "LINK", body)
        return re.sub(r"\S+@example\.com", "ADDRESS", body)

    assert template(api_mail.body) == template(web_mail.body)
    assert "LINK" in template(api_mail.body)


def test_login_is_refused_until_the_link_is_followed_and_then_works() -> None:
    sign_up()
    client, refused = log_in()
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["code"] == "email_unverified"
    assert ERIN in error["message"] and "link" in error["message"]
    assert client.get("/api/v1/me").status_code in (401, 403)  # no session was started

    follow_verification_link(ERIN)
    client, response = log_in()
    assert response.status_code == 200
    assert client.get("/api/v1/me").json()["email"] == ERIN


def test_an_unverified_login_mails_a_link_at_most_once_per_cooldown() -> None:
    user_signup(email=ERIN, password=PASSWORD)  # an account made without an address record
    for _ in range(2):
        assert log_in()[1].json()["error"]["code"] == "email_unverified"
    assert [message.to for message in mail.outbox] == [[ERIN]]
    follow_verification_link(ERIN)
    assert log_in()[1].status_code == 200


def test_a_wrong_password_on_an_unverified_account_says_only_that() -> None:
    sign_up()
    _client, response = log_in(password="wrong")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_credentials"


def test_signup_answers_a_taken_address_as_a_new_one(alice: Person) -> None:
    new = APIClient().post(
        "/api/v1/signup", {"email": "new@example.com", "password": PASSWORD}, format="json"
    )
    taken = APIClient().post(
        "/api/v1/signup", {"email": "ALICE@example.com", "password": PASSWORD}, format="json"
    )
    assert taken.status_code == new.status_code == 201
    assert set(taken.json()) == set(new.json()) == {"email", "api_key", "message"}
    assert taken.json()["message"] == new.json()["message"].replace("new@", "alice@")
    assert re.fullmatch(r"atl_[0-9a-f]{12}_\S{43}", taken.json()["api_key"])
    # nothing was made for the taken address, and its answer's key opens nothing
    assert User.objects.filter(email__iexact="alice@example.com").count() == 1
    assert not ApiKey.objects.filter(prefix=taken.json()["api_key"].split("_")[1]).exists()
    assert with_key(taken.json()["api_key"]).get("/api/v1/me").status_code == 401
    # the owner hears of it by mail, as after a web sign-up with their address
    [to_alice] = [m for m in mail.outbox if m.to == ["alice@example.com"]]
    assert "confirm-email" not in to_alice.body and "/accounts/password/reset/" in to_alice.body


def test_login_answers_an_unknown_address_as_a_wrong_password(alice: Person) -> None:
    unknown = log_in("nobody@example.com", PASSWORD)[1]
    wrong = log_in("alice@example.com", "wrong")[1]
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json() == wrong.json()


def test_signup_is_limited_per_address_across_ips(settings: object) -> None:
    # an hour's window: a minute's can roll over between attempts on a busy machine
    settings.AUTH_RATE = "2/h"  # type: ignore[attr-defined]
    statuses = [
        APIClient(REMOTE_ADDR=f"10.0.0.{n}")
        .post("/api/v1/signup", {"email": ERIN, "password": PASSWORD}, format="json")
        .status_code
        for n in range(3)
    ]
    assert statuses == [201, 201, 429]


def test_login_is_limited_per_address_across_ips(alice: Person, settings: object) -> None:
    settings.AUTH_RATE = "2/h"  # type: ignore[attr-defined]
    body = {"email": "alice@example.com", "password": "wrong"}
    statuses = [
        APIClient(REMOTE_ADDR=f"10.0.0.{n}").post("/api/v1/login", body, format="json").status_code
        for n in range(3)
    ]
    assert statuses == [401, 401, 429]


def test_a_password_reset_on_a_never_verified_account_revokes_its_keys() -> None:
    # Mallory signs up with Erin's address; Erin takes the account back with a reset.
    mallorys = sign_up()["api_key"]
    browser = Client()
    browser.post("/accounts/password/reset/", {"email": ERIN})
    reset_link = re.search(r"https?://\S+/accounts/password/reset/key/\S+/", mail.outbox[-1].body)
    form = browser.get(urlsplit(reset_link.group(0)).path, follow=True)
    new_password = "a different long passphrase"
    done = browser.post(
        form.redirect_chain[-1][0], {"password1": new_password, "password2": new_password}
    )
    assert done.status_code == 302

    assert ApiKey.objects.get(created_by__email=ERIN).revoked_at is not None
    # Erin logs in, is asked to verify, verifies: Mallory's key still opens nothing.
    assert log_in(password=new_password)[1].status_code == 403
    follow_verification_link(ERIN)
    assert log_in(password=new_password)[1].status_code == 200
    assert with_key(mallorys).get("/api/v1/me").status_code == 401


def test_a_password_reset_on_a_verified_account_keeps_its_keys(alice: Person) -> None:
    AccountAdapter().set_password(alice.user, "a different long passphrase")
    assert alice.client().get("/api/v1/me").status_code == 200
