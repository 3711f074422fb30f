"""Whatever order Stripe's events arrive in, the workspace ends in Stripe's latest state."""

from __future__ import annotations

import itertools

import pytest

from billing.models import StripeEvent, Subscription
from billing.selectors import plan_for
from tests.billing.conftest import StripeWorld, event_payload, post_webhook
from tests.conftest import Person

ORDERS = list(itertools.permutations(["created", "updated", "deleted"]))


def _final_state(person: Person) -> tuple[object, ...]:
    row = Subscription.objects.get(workspace=person.workspace)
    return (
        plan_for(person.workspace).slug,
        row.status,
        row.plan.slug,
        row.stripe_subscription_id,
        row.pending_plan_id,
        row.grace_period_ends_at,
    )


@pytest.mark.parametrize("order", ORDERS, ids=["-".join(order) for order in ORDERS])
def test_every_order_of_created_updated_deleted_ends_canceled_on_free(
    stripe_world: StripeWorld, alice: Person, order: tuple[str, ...]
) -> None:
    customer = stripe_world.customer_for(alice)
    created = stripe_world.subscribe(customer, alice.workspace, "pro")
    updated = stripe_world.change_plan(created, "team")
    deleted = stripe_world.client.v1.subscriptions.cancel(created["id"]).to_dict()
    payloads = {
        "created": event_payload("customer.subscription.created", created),
        "updated": event_payload("customer.subscription.updated", updated),
        "deleted": event_payload("customer.subscription.deleted", deleted),
    }

    for name in order:
        assert post_webhook(payloads[name]).status_code == 200

    assert _final_state(alice) == ("free", "canceled", "team", created["id"], None, None)
    assert set(StripeEvent.objects.values_list("status", flat=True)) == {"succeeded"}


@pytest.mark.parametrize("order", [("created", "updated"), ("updated", "created")])
def test_every_order_of_created_and_updated_ends_on_the_newest_plan(
    stripe_world: StripeWorld, alice: Person, order: tuple[str, ...]
) -> None:
    customer = stripe_world.customer_for(alice)
    created = stripe_world.subscribe(customer, alice.workspace, "pro")
    updated = stripe_world.change_plan(created, "team")
    payloads = {
        "created": event_payload("customer.subscription.created", created),
        "updated": event_payload("customer.subscription.updated", updated),
    }

    for name in order:
        assert post_webhook(payloads[name]).status_code == 200

    assert _final_state(alice) == ("team", "active", "team", created["id"], None, None)


def test_a_late_event_of_an_ended_subscription_does_not_touch_the_new_one(
    stripe_world: StripeWorld, alice: Person
) -> None:
    customer = stripe_world.customer_for(alice)
    old = stripe_world.subscribe(customer, alice.workspace, "pro")
    old_deleted = stripe_world.client.v1.subscriptions.cancel(old["id"]).to_dict()
    new = stripe_world.subscribe(customer, alice.workspace, "team")

    assert post_webhook(event_payload("customer.subscription.created", new)).status_code == 200
    assert (
        post_webhook(event_payload("customer.subscription.deleted", old_deleted)).status_code == 200
    )
    assert post_webhook(event_payload("customer.subscription.created", old)).status_code == 200

    assert _final_state(alice) == ("team", "active", "team", new["id"], None, None)
