"""A Checkout completion counts only for a Checkout the platform started, for the workspace it
was started for; two tabs cannot buy two subscriptions.

Stripe here is localstripe, except for Checkout sessions, which it cannot serve: those the
recording boundary answers as Stripe would, and every other request goes on to localstripe.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest
import requests
from django.test import Client

from accounts.models import User
from billing.models import CheckoutSession, StripeEvent, Subscription
from billing.selectors import plan_for
from tests.billing.conftest import (
    SECRET_KEY,
    RecordedRequest,
    StripeRecorder,
    StripeWorld,
    event_payload,
    post_webhook,
)
from tests.conftest import Person

Install = Callable[..., StripeRecorder]


@pytest.fixture
def stripe_with_checkout(
    stripe_world: StripeWorld, localstripe: str, stripe_boundary: Install
) -> StripeRecorder:
    numbers = itertools.count(1)

    def answer(request: RecordedRequest) -> tuple[int, dict[str, Any]]:
        if (request.method, request.path) == ("POST", "/v1/checkout/sessions"):
            session_id = f"cs_test_{next(numbers)}"
            return 200, {
                "id": session_id,
                "object": "checkout.session",
                "url": f"https://checkout.test/{session_id}",
            }
        in_body = request.method == "POST"
        response = requests.request(
            request.method,
            f"{localstripe}{request.path}",
            params=None if in_body else request.params,
            data=request.params if in_body else None,
            headers={"Authorization": f"Bearer {SECRET_KEY}"},
            timeout=10,
        )
        return response.status_code, response.json()

    return stripe_boundary(answer)


def _checkout(person: Person) -> str:
    response = person.client().post("/api/v1/billing/checkout", {"plan": "pro"}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def _pay(stripe_world: StripeWorld, person: Person) -> dict[str, Any]:
    """What paying a Checkout makes in Stripe: a subscription for the workspace's customer."""
    customer = Subscription.objects.get(workspace=person.workspace).stripe_customer_id
    stripe_world.card(customer)
    return stripe_world.subscribe(customer, person.workspace, "pro")


def _completed(session_id: str, subscription: dict[str, Any], reference: str) -> bytes:
    session = {
        "id": session_id,
        "object": "checkout.session",
        "mode": "subscription",
        "status": "complete",
        "client_reference_id": reference,
        "customer": subscription["customer"],
        "subscription": subscription["id"],
    }
    return event_payload("checkout.session.completed", session)


def _refunds(stripe_world: StripeWorld, subscription: dict[str, Any]) -> list[dict[str, Any]]:
    invoice = stripe_world.client.v1.invoices.retrieve(
        stripe_world.retrieve(subscription["id"])["latest_invoice"]
    )
    found = stripe_world.client.v1.refunds.list(params={"payment_intent": invoice.payment_intent})
    return [refund.to_dict() for refund in found.data]


def test_a_completed_checkout_puts_the_workspace_on_its_plan(
    stripe_with_checkout: StripeRecorder, stripe_world: StripeWorld, alice: Person
) -> None:
    session_id = _checkout(alice)
    subscription = _pay(stripe_world, alice)

    response = post_webhook(_completed(session_id, subscription, str(alice.workspace.pk)))

    assert response.json() == {"received": True, "duplicate": False, "status": "succeeded"}
    assert plan_for(alice.workspace).slug == "pro"
    row = Subscription.objects.get(workspace=alice.workspace)
    assert (row.stripe_subscription_id, row.checkout_session_id) == (subscription["id"], "")
    checkout = CheckoutSession.objects.get(stripe_session_id=session_id)
    assert (checkout.status, checkout.stripe_subscription_id) == ("completed", subscription["id"])


@pytest.mark.parametrize("second_event_first", [False, True])
def test_two_tabs_paying_two_checkouts_leave_one_subscription_and_refund_the_other(
    stripe_with_checkout: StripeRecorder,
    stripe_world: StripeWorld,
    alice: Person,
    second_event_first: bool,
) -> None:
    first_tab, second_tab = _checkout(alice), _checkout(alice)
    first, second = _pay(stripe_world, alice), _pay(stripe_world, alice)
    reference = str(alice.workspace.pk)
    assert post_webhook(_completed(first_tab, first, reference)).status_code == 200
    if second_event_first:
        # Stripe does not order events: the second subscription's own event may come first.
        early = post_webhook(event_payload("customer.subscription.created", second))
        assert early.status_code == 200
        assert "second one" in early.json()["error"]["message"]

    response = post_webhook(_completed(second_tab, second, reference))

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "failed"
    assert "second subscription" in response.json()["error"]["message"]
    assert stripe_world.retrieve(second["id"])["status"] == "canceled"
    assert stripe_world.retrieve(first["id"])["status"] == "active"
    [refund] = _refunds(stripe_world, second)
    assert refund["metadata"] == {"subscription": second["id"]}
    assert _refunds(stripe_world, first) == []
    row = Subscription.objects.get(workspace=alice.workspace)
    assert (row.stripe_subscription_id, row.status) == (first["id"], "active")
    assert plan_for(alice.workspace).slug == "pro"
    assert CheckoutSession.objects.get(stripe_session_id=second_tab).status == "refused"
    # Stripe's word that the second one ended changes nothing for the workspace.
    ended = stripe_world.retrieve(second["id"])
    assert post_webhook(event_payload("customer.subscription.deleted", ended)).status_code == 200
    assert Subscription.objects.get(workspace=alice.workspace).stripe_subscription_id == first["id"]


def test_a_completion_of_a_checkout_the_platform_did_not_start_is_refused(
    stripe_with_checkout: StripeRecorder, stripe_world: StripeWorld, alice: Person
) -> None:
    _checkout(alice)  # the one the platform started, still open
    subscription = _pay(stripe_world, alice)

    response = post_webhook(_completed("cs_forged", subscription, str(alice.workspace.pk)))

    assert response.status_code == 200
    assert response.json()["status"] == "failed"
    assert "was not started by this platform" in response.json()["error"]["message"]
    assert StripeEvent.objects.get().status == "failed"
    assert plan_for(alice.workspace).slug == "free"
    assert Subscription.objects.get(workspace=alice.workspace).stripe_subscription_id == ""


def test_a_completion_naming_another_workspace_than_its_checkout_is_refused(
    stripe_with_checkout: StripeRecorder, stripe_world: StripeWorld, alice: Person, bob: Person
) -> None:
    bobs_session = _checkout(bob)
    _checkout(alice)
    subscription = _pay(stripe_world, bob)

    response = post_webhook(_completed(bobs_session, subscription, str(alice.workspace.pk)))

    assert response.status_code == 200
    assert "not the one it was started for" in response.json()["error"]["message"]
    assert plan_for(alice.workspace).slug == "free"
    assert plan_for(bob.workspace).slug == "free"
    assert not Subscription.objects.exclude(stripe_subscription_id="").exists()


def test_operators_see_each_checkout_and_what_became_of_it(
    stripe_with_checkout: StripeRecorder, stripe_world: StripeWorld, alice: Person
) -> None:
    first_tab, second_tab = _checkout(alice), _checkout(alice)
    subscription = _pay(stripe_world, alice)
    post_webhook(_completed(first_tab, subscription, str(alice.workspace.pk)))
    ops = Client()
    ops.force_login(User.objects.create_superuser("ops@example.com", "a long passphrase"))

    listing = ops.get("/admin/billing/checkoutsession/").content.decode()

    assert first_tab in listing and second_tab in listing
    assert ">Completed<" in listing and ">Open<" in listing
    checkout = CheckoutSession.objects.get(stripe_session_id=first_tab)
    assert ops.post(f"/admin/billing/checkoutsession/{checkout.pk}/delete/").status_code == 403


def test_a_refused_checkout_that_stripe_could_not_refund_is_finished_on_redelivery(
    stripe_with_checkout: StripeRecorder, stripe_world: StripeWorld, alice: Person
) -> None:
    first_tab, second_tab = _checkout(alice), _checkout(alice)
    first, second = _pay(stripe_world, alice), _pay(stripe_world, alice)
    reference = str(alice.workspace.pk)
    assert post_webhook(_completed(first_tab, first, reference)).status_code == 200
    stripe_answers = stripe_with_checkout.responder

    def refunds_down(request: RecordedRequest) -> tuple[int, dict[str, Any]]:
        if request.path == "/v1/refunds":
            return 503, {"error": {"type": "api_error", "message": "Try again later."}}
        return stripe_answers(request)

    stripe_with_checkout.responder = refunds_down
    payload = _completed(second_tab, second, reference)

    down = post_webhook(payload)

    assert down.status_code == 502, down.content
    assert int(down["Retry-After"]) >= 1
    assert stripe_world.retrieve(second["id"])["status"] == "active"
    assert CheckoutSession.objects.get(stripe_session_id=second_tab).status == "refused"

    stripe_with_checkout.responder = stripe_answers
    again = post_webhook(payload)

    assert again.status_code == 200
    assert "second subscription" in again.json()["error"]["message"]
    assert stripe_world.retrieve(second["id"])["status"] == "canceled"
    assert len(_refunds(stripe_world, second)) == 1
    assert Subscription.objects.get(workspace=alice.workspace).stripe_subscription_id == first["id"]


def test_a_checkout_stripe_expired_is_no_longer_pending(
    stripe_with_checkout: StripeRecorder, alice: Person
) -> None:
    session_id = _checkout(alice)
    assert alice.client().get("/api/v1/billing").json()["activating"] is True
    session = {"id": session_id, "object": "checkout.session", "status": "expired"}

    response = post_webhook(event_payload("checkout.session.expired", session))

    assert response.json()["status"] == "succeeded"
    assert CheckoutSession.objects.get(stripe_session_id=session_id).status == "expired"
    assert alice.client().get("/api/v1/billing").json()["activating"] is False
