"""Sign-up and login read JSON only, so that no other site can make a visitor's browser log
in to (or sign up for) an account of the attacker's choosing: a cross-site page can send a
form or text/plain without asking, but not application/json."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from accounts.models import User
from tests.conftest import PASSWORD, Person

pytestmark = pytest.mark.django_db

CROSS_SITE_BODIES = [
    # what an HTML form on another site can send
    {"content_type": "application/x-www-form-urlencoded", "data": "email=x&password=y"},
    {"content_type": "multipart/form-data; boundary=BoUnDaRy"},
    # what fetch(..., {mode: "no-cors"}) can send without a preflight
    {"content_type": "text/plain"},
]


def post_as(client: Client, path: str, credentials: dict[str, str], how: dict[str, str]) -> object:
    if how["content_type"].startswith("multipart"):
        return client.post(path, credentials)  # the test client's own multipart encoding
    if how["content_type"].startswith("application/x-www-form-urlencoded"):
        body = "&".join(f"{name}={value}" for name, value in credentials.items())
        return client.post(path, body, content_type=how["content_type"])
    return client.post(path, json.dumps(credentials), content_type=how["content_type"])


@pytest.mark.parametrize("how", CROSS_SITE_BODIES, ids=lambda how: how["content_type"][:20])
def test_a_login_that_a_form_or_text_could_send_cross_site_starts_no_session(
    alice: Person, how: dict[str, str]
) -> None:
    client = Client()
    credentials = {"email": "alice@example.com", "password": PASSWORD}
    response = post_as(client, "/api/v1/login", credentials, how)
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"
    assert "sessionid" not in response.cookies
    assert client.get("/api/v1/me").status_code in (401, 403)


@pytest.mark.parametrize("how", CROSS_SITE_BODIES, ids=lambda how: how["content_type"][:20])
def test_a_signup_that_a_form_or_text_could_send_cross_site_makes_no_account(
    how: dict[str, str],
) -> None:
    credentials = {"email": "erin@example.com", "password": PASSWORD}
    response = post_as(Client(), "/api/v1/signup", credentials, how)
    assert response.status_code == 415
    assert not User.objects.exists()


def test_a_json_login_still_works_from_a_script(alice: Person) -> None:
    client = Client()
    response = client.post(
        "/api/v1/login",
        {"email": "alice@example.com", "password": PASSWORD},
        content_type="application/json",
    )
    assert response.status_code == 200
    assert client.get("/api/v1/me").json()["email"] == "alice@example.com"


def test_a_session_started_by_login_still_needs_the_csrf_token_to_change_things(
    alice: Person,
) -> None:
    client = Client(enforce_csrf_checks=True)
    client.post(
        "/api/v1/login",
        {"email": "alice@example.com", "password": PASSWORD},
        content_type="application/json",
    )
    refused = client.post("/api/v1/keys", {"name": "x"}, content_type="application/json")
    assert refused.status_code == 403
    token = client.cookies["csrftoken"].value
    created = client.post(
        "/api/v1/keys", {"name": "x"}, content_type="application/json", HTTP_X_CSRFTOKEN=token
    )
    assert created.status_code == 201
