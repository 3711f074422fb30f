"""The webhook endpoint believes only what Stripe signed, and acts on each event once."""

from __future__ import annotations

import json
import time

from pytest_django.fixtures import Settings as SettingsWrapper

from billing.models import Plan, PlanChange, StripeEvent, Subscription
from billing.selectors import plan_for
from tests.billing.conftest import StripeWorld, event_payload, post_webhook, sign
from tests.conftest import Person


def _subscribed_event(stripe_world: StripeWorld, alice: Person) -> tuple[bytes, dict]:
    customer = stripe_world.customer_for(alice)
    subscription = stripe_world.subscribe(customer, alice.workspace, "pro")
    return event_payload("customer.subscription.created", subscription), subscription


def test_a_signed_subscription_event_puts_the_workspace_on_the_paid_plan(
    stripe_world: StripeWorld, alice: Person
) -> None:
    payload, subscription = _subscribed_event(stripe_world, alice)

    response = post_webhook(payload)

    assert response.status_code == 200, response.content
    assert response.json() == {"received": True, "duplicate": False, "status": "succeeded"}
    assert plan_for(alice.workspace).slug == "pro"
    row = Subscription.objects.get(workspace=alice.workspace)
    assert (row.status, row.stripe_subscription_id) == ("active", subscription["id"])
    event = StripeEvent.objects.get()
    assert (event.status, event.workspace_id, event.error) == ("succeeded", alice.workspace.pk, "")
    change = PlanChange.objects.get(workspace=alice.workspace)
    assert (change.from_plan.slug, change.to_plan.slug, change.cause) == (
        "free",
        "pro",
        "subscribed",
    )
    assert change.stripe_event == event


def test_a_badly_signed_event_is_refused_and_changes_nothing(
    stripe_world: StripeWorld, alice: Person
) -> None:
    payload, _ = _subscribed_event(stripe_world, alice)

    forged = post_webhook(payload, signature=sign(payload, secret="whsec_someone_else"))
    unsigned = post_webhook(payload, signature="")
    tampered = post_webhook(payload.replace(b'"active"', b'"trialing"'), signature=sign(payload))

    for response in (forged, unsigned, tampered):
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_signature"
    assert not StripeEvent.objects.exists()
    assert plan_for(alice.workspace).slug == "free"


def test_an_event_signed_too_long_ago_is_refused(stripe_world: StripeWorld, alice: Person) -> None:
    payload, _ = _subscribed_event(stripe_world, alice)

    stale = post_webhook(payload, signature=sign(payload, timestamp=int(time.time()) - 301))

    assert stale.status_code == 400
    assert stale.json()["error"]["code"] == "invalid_signature"
    assert not StripeEvent.objects.exists()
    # The same event signed now is accepted: only the timestamp was wrong.
    assert post_webhook(payload).status_code == 200
    assert plan_for(alice.workspace).slug == "pro"


def test_a_duplicate_event_is_acknowledged_and_not_processed_again(
    stripe_world: StripeWorld, alice: Person
) -> None:
    payload, subscription = _subscribed_event(stripe_world, alice)
    assert post_webhook(payload).status_code == 200
    # Stripe's state moves on; a redelivery of the first event must not read it again.
    stripe_world.client.v1.subscriptions.cancel(subscription["id"])

    again = post_webhook(payload)

    assert again.status_code == 200
    assert again.json() == {"received": True, "duplicate": True, "status": "succeeded"}
    assert StripeEvent.objects.get().attempts == 1
    assert PlanChange.objects.count() == 1
    assert plan_for(alice.workspace).slug == "pro"


def test_an_event_that_fails_is_recorded_and_a_redelivery_retries_it(
    stripe_world: StripeWorld, alice: Person
) -> None:
    payload, _ = _subscribed_event(stripe_world, alice)
    Plan.objects.filter(slug="pro").update(stripe_price_id="", stripe_product_id="")

    failed = post_webhook(payload)

    assert failed.status_code == 500
    assert failed.json()["error"]["code"] == "webhook_processing_failed"
    event = StripeEvent.objects.get()
    assert event.status == "failed"
    assert "is not the price of any plan" in event.error
    assert (
        not Subscription.objects.filter(workspace=alice.workspace)
        .exclude(stripe_subscription_id="")
        .exists()
    )
    assert plan_for(alice.workspace).slug == "free"

    Plan.objects.filter(slug="pro").update(stripe_price_id=stripe_world.prices["pro"])
    retried = post_webhook(payload)

    assert retried.status_code == 200
    event.refresh_from_db()
    assert (event.status, event.attempts, event.error) == ("succeeded", 2, "")
    assert plan_for(alice.workspace).slug == "pro"


def test_an_event_type_the_platform_does_not_use_is_stored_and_ignored(
    stripe_world: StripeWorld, alice: Person
) -> None:
    payload = event_payload("customer.created", {"id": "cus_x", "object": "customer"})

    response = post_webhook(payload)

    assert response.status_code == 200
    event = StripeEvent.objects.get()
    assert event.status == "succeeded"
    assert event.outcome.startswith("ignored")
    assert json.loads(payload)["id"] == event.event_id


def test_without_stripe_settings_the_webhook_says_billing_is_not_set_up(
    settings: SettingsWrapper, alice: Person
) -> None:
    settings.STRIPE_SECRET_KEY = ""
    settings.STRIPE_WEBHOOK_SECRET = ""
    payload = event_payload("customer.subscription.created", {"id": "sub_x"})

    response = post_webhook(payload)

    assert response.status_code == 501
    assert response.json()["error"]["code"] == "billing_not_configured"
    assert not StripeEvent.objects.exists()
