from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import Membership, User
from tests.conftest import PASSWORD, Person, follow_verification_link

pytestmark = pytest.mark.django_db


def test_signup_creates_a_user_their_personal_workspace_and_a_working_key(
    charlie: APIClient,
) -> None:
    response = charlie.post(
        "/api/v1/signup",
        {"email": "Erin@Example.com", "password": PASSWORD, "name": "Erin"},
        format="json",
    )
    assert response.status_code == 201, response.content
    user = User.objects.get(email="erin@example.com")
    membership = Membership.objects.get(user=user)
    assert membership.role == Membership.Role.OWNER and membership.workspace.personal

    follow_verification_link("erin@example.com")  # as the mail asks
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['api_key']}")
    assert client.get("/api/v1/me").json()["workspace"]["id"] == str(membership.workspace.id)


def test_signup_refuses_a_weak_password(alice: Person) -> None:
    # A taken address is no longer refused (that told anyone which addresses have accounts):
    # tests/accounts/test_verified_people_only.py has what it answers now.
    weak = APIClient().post(
        "/api/v1/signup", {"email": "new@example.com", "password": "123"}, format="json"
    )
    assert weak.status_code == 400 and weak.json()["error"]["param"] == "password"
    assert User.objects.count() == 1


def test_login_starts_a_session_that_reaches_the_api(alice: Person) -> None:
    client = Client()
    response = client.post(
        "/api/v1/login",
        {"email": "alice@example.com", "password": PASSWORD},
        content_type="application/json",
    )
    assert response.status_code == 200
    assert client.get("/api/v1/me").json()["email"] == "alice@example.com"


def test_wrong_password_is_a_401(alice: Person) -> None:
    response = APIClient().post(
        "/api/v1/login", {"email": "alice@example.com", "password": "wrong"}, format="json"
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_credentials"


def test_login_attempts_are_rate_limited_per_ip(alice: Person, settings: object) -> None:
    settings.AUTH_RATE = "3/m"  # type: ignore[attr-defined]
    client = APIClient()
    body = {"email": "alice@example.com", "password": "wrong"}
    statuses = [client.post("/api/v1/login", body, format="json").status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    refused = client.post("/api/v1/login", {**body, "password": PASSWORD}, format="json")
    assert refused.status_code == 429
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert int(refused["Retry-After"]) > 0
