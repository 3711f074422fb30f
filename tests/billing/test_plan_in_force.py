"""plan_for reads the plan in force in one SQL statement; Subscription.plan_at is the rule
it must keep. Every combination of status, grace period and scheduled downgrade, before,
at and after each date, gives the same plan both ways; retention_days_for, which a settle
uses for a batch's workspaces at once, gives that plan's retention."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from django.utils import timezone

from billing.models import Plan, Subscription
from billing.selectors import default_plan, plan_for, retention_days_for
from tests.conftest import Person

pytestmark = pytest.mark.django_db


def test_plan_for_gives_what_the_subscription_s_rule_gives(alice: Person) -> None:
    now = timezone.now()
    for days, slug in enumerate((default_plan().slug, "pro", "team"), start=5):
        Plan.objects.filter(slug=slug).update(retention_days=days)  # told apart by it
    pro, team = Plan.objects.get(slug="pro"), Plan.objects.get(slug="team")
    assert plan_for(alice.workspace) == default_plan()  # no subscription: the free plan
    subscription = Subscription.objects.create(workspace=alice.workspace, plan=team)
    grace_ends = (None, now - timedelta(days=1), now + timedelta(days=1))
    pending = ((None, None), (pro, now - timedelta(hours=1)), (pro, now + timedelta(hours=1)))
    moments = (now - timedelta(days=2), now, now + timedelta(hours=2), now + timedelta(days=2))
    checked = 0
    for status, grace, (pending_plan, pending_at), at in itertools.product(
        Subscription.Status.values, grace_ends, pending, moments
    ):
        subscription.status = status
        subscription.grace_period_ends_at = grace
        subscription.pending_plan = pending_plan
        subscription.pending_plan_at = pending_at
        subscription.save()
        expected = subscription.plan_at(at) or default_plan()
        assert plan_for(alice.workspace, at=at) == expected, (status, grace, pending_at, at)
        retention = retention_days_for([alice.workspace.pk], at=at)
        assert retention == {alice.workspace.pk: expected.retention_days}, (status, grace, at)
        checked += 1
    assert checked == len(Subscription.Status.values) * 3 * 3 * 4


def test_a_grace_period_s_end_and_a_downgrade_s_date_apply_at_the_exact_moment(
    alice: Person,
) -> None:
    now = timezone.now()
    pro, team = Plan.objects.get(slug="pro"), Plan.objects.get(slug="team")
    Subscription.objects.create(
        workspace=alice.workspace, plan=team, pending_plan=pro, pending_plan_at=now,
        status=Subscription.Status.PAST_DUE, grace_period_ends_at=now + timedelta(days=3),
    )  # fmt: skip
    assert plan_for(alice.workspace, at=now - timedelta(microseconds=1)) == team
    assert plan_for(alice.workspace, at=now) == pro
    assert plan_for(alice.workspace, at=now + timedelta(days=3)) == default_plan()


def test_retention_days_for_reads_several_workspaces_plans_at_once(
    alice: Person, bob: Person
) -> None:
    team = Plan.objects.get(slug="team")
    Plan.objects.filter(pk=team.pk).update(retention_days=90)
    Subscription.objects.create(workspace=alice.workspace, plan=team)
    free_days = default_plan().retention_days
    assert free_days != 90
    assert retention_days_for([alice.workspace.pk, bob.workspace.pk]) == {
        alice.workspace.pk: 90,
        bob.workspace.pk: free_days,
    }
    assert retention_days_for([]) == {}
