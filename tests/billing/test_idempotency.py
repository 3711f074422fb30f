from __future__ import annotations

import pytest

from billing.models import QuotaCounter
from generation.models import Job
from tests.conftest import Person, small_job

pytestmark = pytest.mark.django_db


def post(person: Person, body: dict[str, object], key: str) -> object:
    return person.client().post(
        "/api/v1/generations", body, format="json", HTTP_IDEMPOTENCY_KEY=key
    )


def test_the_same_key_and_body_return_the_same_job_without_a_second_charge(alice: Person) -> None:
    first = post(alice, small_job(seed=1), "order-17")
    again = post(alice, small_job(seed=1), "order-17")
    assert first.status_code == 202 and again.status_code == 200
    assert again["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert Job.objects.count() == 1
    assert QuotaCounter.objects.get(workspace=alice.workspace).used == 1


def test_the_same_key_with_another_body_is_a_409(alice: Person) -> None:
    post(alice, small_job(seed=1), "order-17")
    conflict = post(alice, small_job(seed=2), "order-17")
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "idempotency_key_reused"
    assert Job.objects.count() == 1
    assert QuotaCounter.objects.get(workspace=alice.workspace).used == 1


def test_keys_are_scoped_to_the_workspace(alice: Person, bob: Person) -> None:
    a = post(alice, small_job(seed=1), "shared-key")
    b = post(bob, small_job(seed=1), "shared-key")
    assert a.status_code == b.status_code == 202
    assert a.json()["id"] != b.json()["id"]


def test_a_replay_after_the_quota_is_spent_still_returns_the_job(alice: Person) -> None:
    first = post(alice, small_job(), "k1")
    post(alice, small_job(), "k2")
    post(alice, small_job(), "k3")
    assert post(alice, small_job(), "k4").status_code == 429
    replay = post(alice, small_job(), "k1")
    assert replay.status_code == 200 and replay.json()["id"] == first.json()["id"]
