"""The free plan's daily images belong to a person (a workspace's owner), shared by every
free workspace they own; a paid plan or an operator's override is a workspace's own."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine
from django.test import Client

from accounts.keys import api_key_create
from accounts.models import Membership
from accounts.services import workspace_create
from billing.models import (
    AllowanceCounter,
    Plan,
    QuotaCounter,
    QuotaLedgerEntry,
    QuotaOverride,
    Subscription,
)
from billing.quotas import quota_capture, quota_refund, quota_release
from billing.switches import operator_switches_update
from generation.models import Job
from tests.conftest import Person, small_job

pytestmark = pytest.mark.django_db

NOON = datetime(2026, 3, 2, 12, 0, 0, tzinfo=UTC)


def another_workspace(person: Person, name: str = "Side project") -> Person:
    """A team workspace the person opens (on the free plan), with a key of theirs in it."""
    workspace = workspace_create(owner=person.user, name=name)
    _, key = api_key_create(workspace=workspace, user=person.user)
    return Person(user=person.user, workspace=workspace, key=key)


def post(person: Person) -> object:
    return person.client().post("/api/v1/generations", small_job(), format="json")


def submitted_job(person: Person) -> Job:
    response = post(person)
    assert response.status_code == 202, response.json()
    return Job.objects.get(pk=response.json()["id"])


def allowance_used(person: Person) -> int:
    counter = AllowanceCounter.objects.filter(person=person.user).first()
    return counter.used if counter else 0


def workspace_used(person: Person) -> int:
    counter = QuotaCounter.objects.filter(workspace=person.workspace).first()
    return counter.used if counter else 0


def test_a_second_free_workspace_shows_what_is_left_of_its_owners_images(alice: Person) -> None:
    side = another_workspace(alice)
    browser = Client()
    browser.force_login(alice.user)
    assert browser.post("/workspaces/switch/", {"workspace": side.workspace.pk}).status_code == 302
    with time_machine.travel(NOON, tick=False):
        assert [post(alice).status_code for _ in range(2)] == [202, 202]
        listed = side.client().get("/api/v1/generations")
        usage = side.client().get("/api/v1/usage").json()
        page = browser.get("/studio/").content.decode()
        last = post(side)
        refused_here, refused_there = post(side), post(alice)
        personal_usage = alice.client().get("/api/v1/usage").json()
        side_usage = side.client().get("/api/v1/usage").json()

    assert listed["X-RateLimit-Limit-Images"] == "3"
    assert listed["X-RateLimit-Remaining-Images"] == "1"
    assert listed["X-RateLimit-Reset-Images"] == "12h0m0s"
    assert (usage["limit"], usage["used"], usage["remaining"]) == (3, 2, 1)
    assert usage["history"] == []  # nothing was made in this workspace yet
    assert "1 of 3</strong> images left today" in page
    assert 'data-testid="quota-shared"' in page
    assert last.status_code == 202 and last["X-RateLimit-Remaining-Images"] == "0"
    for refused in (refused_here, refused_there):
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "quota_exceeded"
        assert refused["X-RateLimit-Remaining-Images"] == "0"
        assert "Free images are counted per person" in refused.json()["error"]["message"]
    # Both read the shared allowance; each history keeps what that workspace made.
    assert (personal_usage["used"], side_usage["used"]) == (3, 3)
    assert personal_usage["history"] == [{"window_start": "2026-03-02T00:00:00Z", "used": 2}]
    assert side_usage["history"] == [{"window_start": "2026-03-02T00:00:00Z", "used": 1}]


def test_settling_gives_back_to_the_counters_the_reservation_raised(alice: Person) -> None:
    side = another_workspace(alice)
    cancelled, failed, made = (submitted_job(side) for _ in range(3))
    assert (allowance_used(alice), workspace_used(side)) == (3, 3)

    assert side.client().post(f"/api/v1/generations/{cancelled.id}/cancel").status_code == 200
    assert (allowance_used(alice), workspace_used(side)) == (2, 2)

    # The workspace moves to a paid plan before the job fails: the image it took from the
    # owner's allowance still goes back there.
    Subscription.objects.create(workspace=side.workspace, plan=Plan.objects.get(slug="pro"))
    assert quota_release(job=failed)
    assert (allowance_used(alice), workspace_used(side)) == (1, 1)

    # A made image stays counted; an operator's refund gives it back where it was taken.
    assert quota_capture(job=made)
    assert (allowance_used(alice), workspace_used(side)) == (1, 1)
    assert quota_refund(job=made) == 1
    assert (allowance_used(alice), workspace_used(side)) == (0, 0)

    # Settled once, whatever is called again.
    assert not quota_release(job=cancelled) and not quota_release(job=made)
    assert quota_refund(job=made) == 0
    assert (allowance_used(alice), workspace_used(side)) == (0, 0)
    assert not QuotaCounter.objects.filter(workspace=alice.workspace).exists()
    assert set(QuotaLedgerEntry.objects.values_list("person", flat=True)) == {alice.user.pk}


def test_a_paid_workspace_draws_on_its_plan_not_on_its_owners_free_images(
    alice: Person,
) -> None:
    studio = another_workspace(alice, "Studio")
    Subscription.objects.create(workspace=studio.workspace, plan=Plan.objects.get(slug="pro"))
    assert post(alice).status_code == 202

    assert [post(studio).status_code for _ in range(4)] == [202] * 4
    usage = studio.client().get("/api/v1/usage").json()
    assert (usage["plan"]["slug"], usage["limit"], usage["used"], usage["remaining"]) == (
        "pro", 500, 4, 496,
    )  # fmt: skip
    assert allowance_used(alice) == 1  # the paid images took nothing from it
    assert alice.client().get("/api/v1/usage").json()["remaining"] == 2
    assert set(
        QuotaLedgerEntry.objects.filter(workspace=studio.workspace).values_list("person", flat=True)
    ) == {None}

    # Nor does an exhausted free allowance hold the paid workspace back.
    assert [post(alice).status_code for _ in range(3)] == [202, 202, 429]
    assert post(studio).status_code == 202


def test_an_override_is_a_workspaces_own_limit_outside_its_owners_allowance(
    alice: Person, bob: Person
) -> None:
    side = another_workspace(alice)
    assert [post(alice).status_code for _ in range(3)] == [202, 202, 202]
    QuotaOverride.objects.create(workspace=side.workspace, daily_images=2, reason="a demo")
    usage = side.client().get("/api/v1/usage").json()
    assert (usage["limit"], usage["used"], usage["remaining"]) == (2, 0, 2)
    assert [post(side).status_code for _ in range(3)] == [202, 202, 429]
    assert (allowance_used(alice), workspace_used(side)) == (3, 2)

    # Lowering one free workspace holds although its owner's allowance has room.
    bob_side = another_workspace(bob)
    QuotaOverride.objects.create(workspace=bob_side.workspace, daily_images=0, reason="abuse")
    assert post(bob_side).status_code == 429
    assert bob_side.client().get("/api/v1/usage").json()["limit"] == 0
    assert post(bob).status_code == 202


def test_the_operators_temporary_free_quota_lowers_the_shared_allowance(alice: Person) -> None:
    side = another_workspace(alice)
    operator_switches_update(free_daily_images=1)
    try:
        assert post(alice).status_code == 202
        refused = post(side)
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "quota_exceeded"
        usage = side.client().get("/api/v1/usage").json()
        assert (usage["limit"], usage["used"], usage["remaining"]) == (1, 1, 0)
    finally:
        operator_switches_update(free_daily_images=None)
    assert post(side).status_code == 202  # back to three


def test_a_member_of_a_free_workspace_draws_on_its_owners_allowance(
    alice: Person, bob: Person
) -> None:
    team = workspace_create(owner=alice.user, name="Lapsed team")
    # Invited while the workspace was on the Team plan, which has since ended.
    Membership.objects.create(user=bob.user, workspace=team, role=Membership.Role.MEMBER)
    _, key = api_key_create(workspace=team, user=bob.user)
    bob_in_team = Person(user=bob.user, workspace=team, key=key)

    assert [post(bob_in_team).status_code for _ in range(4)] == [202, 202, 202, 429]
    assert post(alice).status_code == 429  # the owner's images went to her workspace
    assert post(bob).status_code == 202  # bob's own allowance is his
    assert (allowance_used(alice), allowance_used(bob)) == (3, 1)
