"""The plan timeline's rules, applied to subscription states without Stripe in the way."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from billing.models import Plan, Subscription
from billing.selectors import plan_for
from billing.subscriptions import (
    SecondSubscription,
    SubscriptionNotOurs,
    SubscriptionState,
    subscription_apply_state,
)
from tests.conftest import Person


@pytest.fixture(autouse=True)
def _priced(db: None) -> None:
    for slug in ("pro", "team"):
        Plan.objects.filter(slug=slug).update(stripe_price_id=f"price_{slug}")


def _state(subscription_id: str, plan: str, person: Person | None, **changes: object) -> dict:
    now = timezone.now()
    fields: dict = {
        "id": subscription_id,
        "customer_id": "cus_alice",
        "status": "active",
        "price_id": f"price_{plan}",
        "product_id": "",
        "current_period_end": now + timedelta(days=30),
        "cancel_at_period_end": False,
        "created": now,
        "workspace_id": str(person.workspace.pk) if person else "",
    }
    return {**fields, **changes}


def _apply(**fields: object) -> tuple[Subscription, str]:
    return subscription_apply_state(state=SubscriptionState(**fields), read_at=timezone.now())


def test_a_second_live_subscription_never_replaces_the_workspaces_one(alice: Person) -> None:
    _apply(**_state("sub_first", "pro", alice))
    later = timezone.now() + timedelta(minutes=1)

    with pytest.raises(SecondSubscription) as refused:
        _apply(**_state("sub_second", "team", alice, created=later))

    assert refused.value.facts == {"current": "sub_first", "second": "sub_second"}
    row = Subscription.objects.get(workspace=alice.workspace)
    assert (row.stripe_subscription_id, row.plan.slug) == ("sub_first", "pro")
    assert plan_for(alice.workspace).slug == "pro"


def test_a_new_subscription_takes_over_once_the_old_one_has_ended(alice: Person) -> None:
    _apply(**_state("sub_first", "pro", alice))
    _apply(**_state("sub_first", "pro", alice, status="canceled"))

    row, _ = _apply(**_state("sub_second", "team", alice, created=timezone.now()))

    assert (row.stripe_subscription_id, row.status) == ("sub_second", "active")
    assert plan_for(alice.workspace).slug == "team"


def test_a_subscription_no_workspace_owns_is_refused_and_changes_nothing(alice: Person) -> None:
    with pytest.raises(SubscriptionNotOurs):
        _apply(**_state("sub_stranger", "pro", None, customer_id="cus_stranger"))

    assert not Subscription.objects.exclude(stripe_subscription_id="").exists()
    assert plan_for(alice.workspace).slug == "free"
