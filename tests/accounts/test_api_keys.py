from __future__ import annotations

import hashlib

import pytest
from rest_framework.test import APIClient

from accounts.models import ApiKey
from tests.conftest import Person

pytestmark = pytest.mark.django_db


def test_a_new_key_is_shown_once_and_stored_hashed(alice: Person) -> None:
    response = alice.session().post("/api/v1/keys", {"name": "laptop"}, format="json")
    assert response.status_code == 201
    secret = response.json()["key"]
    key = ApiKey.objects.get(pk=response.json()["id"])
    assert secret.startswith(f"atl_{key.prefix}_")
    assert key.hashed_secret == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in str(ApiKey.objects.filter(pk=key.pk).values().get())

    listed = alice.client().get("/api/v1/keys").json()["data"]
    assert {k["name"] for k in listed} == {"", "laptop"}
    assert all("key" not in k for k in listed)


def test_using_a_key_records_when(alice: Person) -> None:
    alice.client().get("/api/v1/me")
    assert ApiKey.objects.get(workspace=alice.workspace).last_used_at is not None


def test_a_revoked_key_stops_working(alice: Person) -> None:
    created = alice.session().post("/api/v1/keys", {"name": "ci"}, format="json").json()
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {created['key']}")
    assert other.get("/api/v1/me").status_code == 200

    assert alice.session().delete(f"/api/v1/keys/{created['id']}").status_code == 204
    assert other.get("/api/v1/me").status_code == 401
    assert alice.client().get("/api/v1/me").status_code == 200


def test_bob_cannot_revoke_alices_key(alice: Person, bob: Person) -> None:
    key = ApiKey.objects.get(workspace=alice.workspace)
    assert bob.session().delete(f"/api/v1/keys/{key.id}").status_code == 404
    key.refresh_from_db()
    assert key.revoked_at is None
