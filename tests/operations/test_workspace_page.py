from __future__ import annotations

import pytest
from django.test import Client

from accounts.keys import api_key_create
from accounts.models import Membership
from billing.models import QuotaLedgerEntry
from generation.models import Job
from operations.models import AuditEntry
from tests.conftest import Person, make_person, small_job

pytestmark = pytest.mark.django_db


@pytest.fixture
def team(alice: Person) -> Person:
    """Dana's Pro workspace, where alice is a member with a key of her own, and a job."""
    dana = make_person("dana@example.com", plan="pro")
    Membership.objects.create(user=alice.user, workspace=dana.workspace, role="member")
    api_key_create(workspace=dana.workspace, user=alice.user, name="alice's laptop")
    response = dana.client().post(
        "/api/v1/generations", small_job(prompt="a green kite", num_images=2), format="json"
    )
    assert response.status_code == 202
    return dana


def page_of(admin_client: Client, person: Person) -> str:
    response = admin_client.get(f"/admin/accounts/workspace/{person.workspace.pk}/change/")
    assert response.status_code == 200
    return response.content.decode()


def test_a_workspace_page_shows_members_keys_plan_usage_and_recent_jobs(
    admin_client: Client, team: Person
) -> None:
    page = page_of(admin_client, team)
    assert '<td data-field="plan">Pro</td>' in page
    assert '<td data-field="usage">2 / 500</td>' in page
    assert "alice@example.com</a></td><td>Member</td>" in page
    assert "dana@example.com</a></td><td>Owner</td>" in page
    assert page.count('<tr data-key="') == 2 and "alice&#x27;s laptop" in page
    assert "a green kite" in page
    assert 'aria-label="Images used per day, last 30 days"' in page
    job = Job.objects.get(workspace=team.workspace)
    assert QuotaLedgerEntry.objects.get(job=job, kind="reserve").images == 2
    assert "<title>images: 2</title>" in page  # today's bar: the ledger's reservation


def test_revoking_a_key_and_suspending_from_the_page_are_audited(
    admin_client: Client, admin_user: object, team: Person
) -> None:
    key = team.workspace.api_keys.get(name="alice's laptop")
    url = f"/admin/accounts/workspace/{team.workspace.pk}"
    assert admin_client.get(f"{url}/keys/{key.pk}/revoke/").status_code == 405  # POST only
    assert admin_client.post(f"{url}/keys/{key.pk}/revoke/").status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None
    page = page_of(admin_client, team)
    assert page.count(">Revoke</button>") == 1  # dana's own key only

    assert admin_client.post(f"{url}/suspend/").status_code == 302
    team.workspace.refresh_from_db()
    assert team.workspace.is_suspended
    assert Job.objects.get(workspace=team.workspace).status == Job.Status.CANCELLED
    assert "Lift the suspension" in page_of(admin_client, team)
    assert admin_client.post(f"{url}/unsuspend/").status_code == 302
    team.workspace.refresh_from_db()
    assert not team.workspace.is_suspended
    actions = list(AuditEntry.objects.order_by("created_at").values_list("action", "actor"))
    assert actions == [
        ("api_key.revoke", admin_user.pk),  # type: ignore[attr-defined]
        ("workspace.suspend", admin_user.pk),  # type: ignore[attr-defined]
        ("workspace.unsuspend", admin_user.pk),  # type: ignore[attr-defined]
    ]


def test_a_key_of_another_workspace_cannot_be_revoked_through_this_page(
    admin_client: Client, team: Person, bob: Person
) -> None:
    key = bob.workspace.api_keys.get()
    response = admin_client.post(
        f"/admin/accounts/workspace/{team.workspace.pk}/keys/{key.pk}/revoke/"
    )
    assert response.status_code == 404
    key.refresh_from_db()
    assert key.revoked_at is None
