from __future__ import annotations

import pytest
from django.test import Client

from billing.models import QuotaLedgerEntry
from tests.conftest import Person, small_job

pytestmark = pytest.mark.django_db


def test_operators_see_plan_and_usage_per_workspace(admin_client: Client, alice: Person) -> None:
    alice.client().post("/api/v1/generations", small_job(), format="json")
    page = admin_client.get("/admin/accounts/workspace/")
    assert page.status_code == 200
    assert "1 / 3" in page.content.decode()
    assert "Free" in page.content.decode()


def test_the_ledger_is_read_only_in_the_admin(admin_client: Client, alice: Person) -> None:
    alice.client().post("/api/v1/generations", small_job(), format="json")
    entry = QuotaLedgerEntry.objects.get()
    assert admin_client.get("/admin/billing/quotaledgerentry/").status_code == 200
    assert admin_client.get("/admin/billing/quotaledgerentry/add/").status_code == 403
    page = admin_client.get(f"/admin/billing/quotaledgerentry/{entry.pk}/change/")
    assert page.status_code == 200 and 'name="kind"' not in page.content.decode()
    deleted = admin_client.post(
        f"/admin/billing/quotaledgerentry/{entry.pk}/delete/", {"post": "yes"}
    )
    assert deleted.status_code == 403
    assert QuotaLedgerEntry.objects.filter(pk=entry.pk).exists()


def test_an_override_set_in_the_admin_changes_the_limit(
    admin_client: Client, alice: Person
) -> None:
    response = admin_client.post(
        "/admin/billing/quotaoverride/add/",
        {"workspace": alice.workspace.pk, "daily_images": 10, "reason": "launch day"},
    )
    assert response.status_code == 302, response.content
    headers = alice.client().post("/api/v1/generations", small_job(), format="json")
    assert headers["X-RateLimit-Limit-Images"] == "10"
