"""End to end with localstripe: it signs and delivers its own webhooks to the running app."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from billing.models import StripeEvent
from billing.selectors import plan_for
from tests.billing.conftest import WEBHOOK_PATH, StripeWorld, localstripe_webhook
from tests.conftest import Person

pytestmark = pytest.mark.django_db(transaction=True)


def _wait_for_plan(person: Person, slug: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while plan_for(person.workspace).slug != slug:
        if time.monotonic() > deadline:
            events = list(StripeEvent.objects.values_list("type", "status", "outcome", "error"))
            raise AssertionError(f"plan is not {slug} after {timeout} s; events: {events}")
        time.sleep(0.1)


def test_subscribing_and_canceling_in_stripe_changes_the_workspaces_plan_and_quota(
    live_server: Any, stripe_world: StripeWorld, localstripe: str, alice: Person
) -> None:
    localstripe_webhook(localstripe, url=f"{live_server.url}{WEBHOOK_PATH}", events=None)
    usage_url = f"{live_server.url}/api/v1/usage"
    auth = {"Authorization": f"Bearer {alice.key}"}
    customer = stripe_world.customer_for(alice)

    subscription = stripe_world.subscribe(customer, alice.workspace, "pro")

    _wait_for_plan(alice, "pro")
    usage = requests.get(usage_url, headers=auth, timeout=10).json()
    assert (usage["plan"]["slug"], usage["limit"]) == ("pro", 500)

    stripe_world.client.v1.subscriptions.cancel(subscription["id"])

    _wait_for_plan(alice, "free")
    usage = requests.get(usage_url, headers=auth, timeout=10).json()
    assert (usage["plan"]["slug"], usage["limit"]) == ("free", 3)
    delivered = set(StripeEvent.objects.values_list("type", flat=True))
    assert {"customer.subscription.created", "customer.subscription.deleted"} <= delivered
    assert not StripeEvent.objects.filter(status="failed").exists()
    localstripe_webhook(localstripe, url="http://127.0.0.1:9/muted", events=["muted"])
