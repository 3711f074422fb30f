"""What a subscription change means for the plan and quota: upgrades now, downgrades and
cancellations at period end, failed payments after a grace period."""

from __future__ import annotations

from datetime import timedelta

import time_machine
from django.utils import timezone
from pytest_django.fixtures import Settings as SettingsWrapper

from billing.models import PlanChange, QuotaCounter, Subscription
from billing.selectors import plan_for, quota_status
from billing.subscriptions import SubscriptionState, subscription_apply_state
from tests.billing.conftest import StripeWorld, event_payload, post_webhook
from tests.conftest import Person


def _subscribe(stripe_world: StripeWorld, person: Person, plan: str) -> dict:
    customer = stripe_world.customer_for(person)
    subscription = stripe_world.subscribe(customer, person.workspace, plan)
    assert (
        post_webhook(event_payload("customer.subscription.created", subscription)).status_code
        == 200
    )
    return subscription


def test_an_upgrade_raises_todays_limit_at_once(stripe_world: StripeWorld, alice: Person) -> None:
    today = quota_status(workspace=alice.workspace)
    QuotaCounter.objects.create(workspace=alice.workspace, window_start=today.window_start, used=3)
    assert alice.client().get("/api/v1/usage").json()["remaining"] == 0

    _subscribe(stripe_world, alice, "pro")

    usage = alice.client().get("/api/v1/usage").json()
    assert (usage["plan"]["slug"], usage["limit"], usage["used"], usage["remaining"]) == (
        "pro", 500, 3, 497,
    )  # fmt: skip


def test_a_downgrade_waits_for_the_end_of_the_paid_period(
    stripe_world: StripeWorld, alice: Person
) -> None:
    subscription = _subscribe(stripe_world, alice, "team")
    window = quota_status(workspace=alice.workspace).window_start
    QuotaCounter.objects.create(workspace=alice.workspace, window_start=window, used=700)
    downgraded = stripe_world.change_plan(subscription, "pro")

    assert (
        post_webhook(event_payload("customer.subscription.updated", downgraded)).status_code == 200
    )

    row = Subscription.objects.get(workspace=alice.workspace)
    assert (row.plan.slug, row.pending_plan.slug) == ("team", "pro")
    assert row.pending_plan_at == row.current_period_end
    assert plan_for(alice.workspace).slug == "team"
    change = PlanChange.objects.get(cause=PlanChange.Cause.DOWNGRADE_SCHEDULED)
    assert (change.from_plan.slug, change.to_plan.slug) == ("team", "pro")
    assert change.effective_at == row.current_period_end
    assert (
        plan_for(alice.workspace, at=row.current_period_end - timedelta(seconds=1)).slug == "team"
    )
    assert plan_for(alice.workspace, at=row.current_period_end).slug == "pro"
    # Images already made stay counted and stay made: nothing is taken back.
    assert QuotaCounter.objects.get(workspace=alice.workspace, window_start=window).used == 700


def test_a_cancellation_at_period_end_keeps_the_plan_until_stripe_ends_it(
    stripe_world: StripeWorld, alice: Person
) -> None:
    subscription = _subscribe(stripe_world, alice, "pro")
    canceling = stripe_world.client.v1.subscriptions.update(
        subscription["id"], params={"cancel_at_period_end": True}
    ).to_dict()

    assert (
        post_webhook(event_payload("customer.subscription.updated", canceling)).status_code == 200
    )
    row = Subscription.objects.get(workspace=alice.workspace)
    assert row.cancel_at_period_end is True
    assert plan_for(alice.workspace).slug == "pro"

    ended = stripe_world.client.v1.subscriptions.cancel(subscription["id"]).to_dict()
    assert post_webhook(event_payload("customer.subscription.deleted", ended)).status_code == 200
    assert plan_for(alice.workspace).slug == "free"
    assert PlanChange.objects.filter(cause=PlanChange.Cause.CANCELED, to_plan__slug="free").exists()


def _fail_renewal(stripe_world: StripeWorld, subscription: dict) -> dict:
    """A declining card and a new invoice (localstripe bills when the interval changes, here
    to a yearly price of the same product): Stripe marks the subscription past_due."""
    stripe_world.card(subscription["customer"], number="4000000000000341")
    product = stripe_world.client.v1.plans.retrieve(stripe_world.prices["pro"]).product
    yearly = stripe_world.client.v1.plans.create(
        params={"product": product, "amount": 20000, "currency": "usd", "interval": "year"}
    )
    item = subscription["items"]["data"][0]["id"]
    stripe_world.client.v1.subscriptions.update(
        subscription["id"], params={"items": [{"id": item, "plan": yearly.id}]}
    )
    assert stripe_world.retrieve(subscription["id"])["status"] == "past_due"
    invoice = {"id": "in_failed", "object": "invoice", "subscription": subscription["id"]}
    return invoice


def test_a_failed_payment_keeps_the_plan_for_the_grace_period_then_drops_to_free(
    stripe_world: StripeWorld, alice: Person, settings: SettingsWrapper
) -> None:
    settings.BILLING_GRACE_PERIOD_HOURS = 48
    subscription = _subscribe(stripe_world, alice, "pro")
    invoice = _fail_renewal(stripe_world, subscription)
    failed_at = timezone.now()

    assert post_webhook(event_payload("invoice.payment_failed", invoice)).status_code == 200

    row = Subscription.objects.get(workspace=alice.workspace)
    assert row.status == "past_due"
    assert failed_at + timedelta(hours=48) <= row.grace_period_ends_at
    assert row.grace_period_ends_at <= timezone.now() + timedelta(hours=48)
    assert plan_for(alice.workspace).slug == "pro"
    drop = PlanChange.objects.get(cause=PlanChange.Cause.PAYMENT_FAILED)
    assert (drop.from_plan.slug, drop.to_plan.slug) == ("pro", "free")
    assert drop.effective_at == row.grace_period_ends_at

    with time_machine.travel(row.grace_period_ends_at - timedelta(minutes=1), tick=False):
        assert quota_status(workspace=alice.workspace).limit == 500
        assert alice.client().get("/api/v1/usage").json()["plan"]["slug"] == "pro"
    with time_machine.travel(row.grace_period_ends_at + timedelta(minutes=1), tick=False):
        assert plan_for(alice.workspace).slug == "free"
        usage = alice.client().get("/api/v1/usage").json()
        assert (usage["plan"]["slug"], usage["limit"]) == ("free", 3)


def test_a_payment_that_recovers_within_the_grace_period_keeps_the_plan(
    stripe_world: StripeWorld, alice: Person
) -> None:
    subscription = _subscribe(stripe_world, alice, "pro")
    invoice = _fail_renewal(stripe_world, subscription)
    assert post_webhook(event_payload("invoice.payment_failed", invoice)).status_code == 200
    grace_end = Subscription.objects.get(workspace=alice.workspace).grace_period_ends_at

    # The customer fixes their card and Stripe collects (the update Stripe would send).
    recovered = {**stripe_world.retrieve(subscription["id"]), "status": "active"}
    subscription_apply_state(state=SubscriptionState.from_stripe(recovered), read_at=timezone.now())

    row = Subscription.objects.get(workspace=alice.workspace)
    assert (row.status, row.grace_period_ends_at) == ("active", None)
    assert plan_for(alice.workspace, at=grace_end + timedelta(days=1)).slug == "pro"
    assert PlanChange.objects.filter(cause=PlanChange.Cause.PAYMENT_RECOVERED).exists()
