"""Operators see subscriptions, Stripe events and plan changes, and can replay an event."""

from __future__ import annotations

from django.test import Client

from accounts.models import User
from billing.models import Plan, PlanChange, StripeEvent
from billing.selectors import plan_for
from tests.billing.conftest import StripeWorld, event_payload, post_webhook
from tests.conftest import Person


def _operator() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("ops@example.com", "a long passphrase"))
    return client


def test_an_operator_replays_a_failed_event_after_fixing_the_plan(
    stripe_world: StripeWorld, alice: Person
) -> None:
    customer = stripe_world.customer_for(alice)
    subscription = stripe_world.subscribe(customer, alice.workspace, "pro")
    Plan.objects.filter(slug="pro").update(stripe_price_id="", stripe_product_id="")
    assert (
        post_webhook(event_payload("customer.subscription.created", subscription)).status_code
        == 500
    )
    event = StripeEvent.objects.get()
    Plan.objects.filter(slug="pro").update(stripe_price_id=stripe_world.prices["pro"])
    ops = _operator()

    response = ops.post(
        "/admin/billing/stripeevent/",
        {"action": "replay", "_selected_action": [event.pk]},
        follow=True,
    )

    assert response.status_code == 200
    event.refresh_from_db()
    assert (event.status, event.attempts) == ("succeeded", 2)
    assert plan_for(alice.workspace).slug == "pro"
    change = PlanChange.objects.get(workspace=alice.workspace)
    assert change.stripe_event == event
    for page in ("stripeevent", "planchange", "subscription"):
        listing = ops.get(f"/admin/billing/{page}/")
        assert listing.status_code == 200
        assert alice.workspace.name in listing.content.decode()
    assert ops.get(f"/admin/billing/stripeevent/{event.pk}/change/").status_code == 200
    assert ops.post(f"/admin/billing/stripeevent/{event.pk}/delete/").status_code == 403
