from __future__ import annotations

import pytest

from billing.models import Plan, QuotaCounter, QuotaLedgerEntry
from generation.models import Job
from tests.conftest import Person, small_job

pytestmark = pytest.mark.django_db


def usage(person: Person) -> dict[str, object]:
    return person.client().get("/api/v1/usage").json()


def test_validation_refusals_leave_usage_unchanged(alice: Person) -> None:
    before = usage(alice)
    for body in (small_job(prompt=""), small_job(width=4096), small_job(steps=0)):
        assert alice.client().post("/api/v1/generations", body, format="json").status_code == 400
    assert usage(alice) == before
    assert before["used"] == 0 and before["remaining"] == 3
    assert not QuotaLedgerEntry.objects.exists() and not Job.objects.exists()


def test_rate_limit_refusals_leave_usage_unchanged(alice: Person) -> None:
    Plan.objects.filter(slug="free").update(daily_images=100, requests_per_minute=1)
    client = alice.client()
    assert client.post("/api/v1/generations", small_job(), format="json").status_code == 202
    for _ in range(3):
        assert client.post("/api/v1/generations", small_job(), format="json").status_code == 429
    assert QuotaCounter.objects.get(workspace=alice.workspace).used == 1
    assert QuotaLedgerEntry.objects.count() == 1


def test_quota_refusals_leave_usage_unchanged(alice: Person) -> None:
    client = alice.client()
    for _ in range(3):
        client.post("/api/v1/generations", small_job(), format="json")
    for _ in range(2):
        assert client.post("/api/v1/generations", small_job(), format="json").status_code == 429
    assert usage(alice)["used"] == 3
    assert Job.objects.count() == 3
    assert QuotaLedgerEntry.objects.count() == 3


def test_a_suspended_workspace_is_refused_without_charge(alice: Person) -> None:
    from django.utils import timezone

    alice.workspace.suspended_at = timezone.now()
    alice.workspace.save()
    response = alice.client().post("/api/v1/generations", small_job(), format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "workspace_suspended"
    assert not Job.objects.exists()
