"""A webhook that can never succeed is recorded as failed and acknowledged, so Stripe stops
delivering it; one that may succeed later (Stripe or the database out of reach) is answered
with a 5xx, so Stripe delivers it again."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from django.db import connection, connections
from pytest_django.fixtures import Settings as SettingsWrapper

from bench.common import free_port
from billing.models import StripeEvent, Subscription
from billing.selectors import plan_for
from tests.billing.conftest import StripeWorld, event_payload, post_webhook
from tests.conftest import Person


def _acknowledged_as_failed(response: object, reason: str) -> StripeEvent:
    assert response.status_code == 200, response.content  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert (body["received"], body["status"]) == (True, "failed")
    assert reason in body["error"]["message"]
    event = StripeEvent.objects.get()
    assert event.status == "failed"
    assert reason in event.error
    return event


@pytest.mark.parametrize("data", [{}, {"object": None}, {"object": {"object": "subscription"}}])
def test_an_event_without_its_object_is_recorded_failed_and_acknowledged(
    stripe_world: StripeWorld, alice: Person, data: dict
) -> None:
    event = json.loads(event_payload("customer.subscription.updated", {}))
    event["data"] = data
    payload = json.dumps(event).encode()

    response = post_webhook(payload)

    _acknowledged_as_failed(response, "carries no object with an id")
    # A redelivery (Stripe's, or an operator's resend) fails the same way, still acknowledged.
    assert post_webhook(payload).status_code == 200


@pytest.mark.parametrize(
    "event_type,obj",
    [
        ("customer.subscription.updated", {"id": "sub_nobody", "object": "subscription"}),
        ("invoice.paid", {"id": "in_1", "object": "invoice", "subscription": "sub_nobody"}),
    ],
)
def test_an_event_about_a_subscription_stripe_does_not_know_is_acknowledged(
    stripe_world: StripeWorld, alice: Person, event_type: str, obj: dict
) -> None:
    response = post_webhook(event_payload(event_type, obj))

    _acknowledged_as_failed(response, "Stripe has no subscription sub_nobody")
    assert not Subscription.objects.exclude(stripe_subscription_id="").exists()


def test_an_event_about_a_subscription_no_workspace_owns_is_recorded_failed(
    stripe_world: StripeWorld, alice: Person
) -> None:
    # A customer made outside the platform (the dashboard, another integration).
    stranger = stripe_world.client.v1.customers.create(params={"email": "x@example.com"})
    stripe_world.card(stranger.id)
    subscription = stripe_world.client.v1.subscriptions.create(
        params={"customer": stranger.id, "items": [{"plan": stripe_world.prices["pro"]}]}
    ).to_dict()

    response = post_webhook(event_payload("customer.subscription.created", subscription))

    event = _acknowledged_as_failed(response, f"No workspace owns {subscription['id']}")
    assert event.workspace is None
    assert plan_for(alice.workspace).slug == "free"


def test_when_stripe_cannot_be_reached_the_event_is_answered_5xx_and_retried(
    stripe_world: StripeWorld, alice: Person, settings: SettingsWrapper
) -> None:
    customer = stripe_world.customer_for(alice)
    subscription = stripe_world.subscribe(customer, alice.workspace, "pro")
    payload = event_payload("customer.subscription.created", subscription)
    reachable = settings.STRIPE_API_BASE
    settings.STRIPE_API_BASE = f"http://127.0.0.1:{free_port()}"  # nobody listens there

    unreachable = post_webhook(payload)

    assert unreachable.status_code == 502, unreachable.content
    assert unreachable.json()["error"]["code"] == "stripe_error"
    assert int(unreachable["Retry-After"]) >= 1
    assert StripeEvent.objects.get().status == "failed"
    assert plan_for(alice.workspace).slug == "free"

    settings.STRIPE_API_BASE = reachable
    retried = post_webhook(payload)

    assert retried.status_code == 200
    assert (StripeEvent.objects.get().status, plan_for(alice.workspace).slug) == (
        "succeeded", "pro",
    )  # fmt: skip


@pytest.fixture
def busy_database() -> Iterator[object]:
    """A second connection that holds locks, and a short lock timeout for the requests."""
    other = connections.create_connection("default")
    other.set_autocommit(False)
    with connection.cursor() as cursor:
        cursor.execute("SET lock_timeout = '200ms'")
    yield other
    other.rollback()
    other.close()
    with connection.cursor() as cursor:
        cursor.execute("RESET lock_timeout")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("locked", ["the subscription row", "the event table"])
def test_a_busy_database_is_answered_503_and_the_redelivery_succeeds(
    stripe_world: StripeWorld, alice: Person, busy_database: object, locked: str
) -> None:
    customer = stripe_world.customer_for(alice)
    subscription = stripe_world.subscribe(customer, alice.workspace, "pro")
    payload = event_payload("customer.subscription.created", subscription)
    with busy_database.cursor() as cursor:  # type: ignore[attr-defined]
        if locked == "the subscription row":
            cursor.execute(
                "SELECT 1 FROM billing_subscription WHERE workspace_id = %s FOR UPDATE",
                [alice.workspace.pk],
            )
        else:
            cursor.execute("LOCK TABLE billing_stripeevent IN ACCESS EXCLUSIVE MODE")

    busy = post_webhook(payload)

    assert busy.status_code == 503, busy.content
    assert busy.json()["error"]["code"] == "service_unavailable"
    assert int(busy["Retry-After"]) >= 1
    busy_database.rollback()  # type: ignore[attr-defined]
    assert plan_for(alice.workspace).slug == "free"

    retried = post_webhook(payload)

    assert retried.status_code == 200, retried.content
    assert (StripeEvent.objects.get().status, plan_for(alice.workspace).slug) == (
        "succeeded", "pro",
    )  # fmt: skip
