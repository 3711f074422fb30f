"""Stripe at its boundary: localstripe (a stateful fake Stripe server) started on loopback for
the session, signed webhook payloads, and a recording HTTP client for the calls localstripe
cannot serve (prices, Checkout and portal sessions)."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
import stripe
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from accounts.models import Workspace
from bench.common import free_port
from billing import stripe_client as stripe_client_module
from billing.models import Plan
from billing.stripe_services import billing_customer_ensure
from tests.conftest import Person

WEBHOOK_SECRET = "whsec_atelier_test"
SECRET_KEY = "sk_test_atelier"
WEBHOOK_PATH = "/api/v1/billing/webhook"
SERVER = Path(__file__).with_name("localstripe_server.py")


@pytest.fixture(scope="session")
def localstripe_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("localstripe") / "localstripe.log"
    process = subprocess.Popen(
        [sys.executable, str(SERVER), str(port)],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"localstripe did not start:\n{log.read_text()}")
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def localstripe_webhook(localstripe_url: str, *, url: str, events: list[str] | None) -> None:
    """Register (or replace) the one webhook endpoint localstripe delivers to."""
    data: dict[str, Any] = {"url": url, "secret": WEBHOOK_SECRET}
    if events is not None:
        data["events"] = events
    response = requests.post(f"{localstripe_url}/_config/webhooks/atelier", json=data, timeout=5)
    response.raise_for_status()


@pytest.fixture
def localstripe(localstripe_url: str, settings: SettingsWrapper) -> str:
    """An empty localstripe that delivers no webhooks (a test posts its own), with the
    platform's Stripe settings pointing at it."""
    localstripe_webhook(localstripe_url, url="http://127.0.0.1:9/muted", events=["muted"])
    requests.delete(f"{localstripe_url}/_config/data", timeout=5).raise_for_status()
    settings.STRIPE_SECRET_KEY = SECRET_KEY
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.STRIPE_API_BASE = localstripe_url
    return localstripe_url


def stripe_test_client(base: str) -> stripe.StripeClient:
    return stripe.StripeClient(SECRET_KEY, base_addresses={"api": base})


@dataclass
class StripeWorld:
    """Objects in localstripe for the paid plans, and helpers to act as a customer would."""

    client: stripe.StripeClient
    prices: dict[str, str] = field(default_factory=dict)

    def card(self, customer_id: str, number: str = "4242424242424242") -> str:
        card = {"number": number, "exp_month": 12, "exp_year": 2040, "cvc": "123"}
        method = self.client.v1.payment_methods.create(params={"type": "card", "card": card})
        self.client.v1.payment_methods.attach(method.id, params={"customer": customer_id})
        self.client.v1.customers.update(
            customer_id, params={"invoice_settings": {"default_payment_method": method.id}}
        )
        return method.id

    def customer_for(self, person: Person) -> str:
        customer_id = billing_customer_ensure(workspace=person.workspace, user=person.user)
        self.card(customer_id)
        return customer_id

    def subscribe(self, customer_id: str, workspace: Workspace, plan: str) -> dict[str, Any]:
        subscription = self.client.v1.subscriptions.create(
            params={
                "customer": customer_id,
                "items": [{"plan": self.prices[plan]}],
                "metadata": {"workspace_id": str(workspace.pk)},
            }
        )
        return subscription.to_dict()

    def change_plan(self, subscription: dict[str, Any], plan: str) -> dict[str, Any]:
        item = subscription["items"]["data"][0]["id"]
        changed = self.client.v1.subscriptions.update(
            subscription["id"], params={"items": [{"id": item, "plan": self.prices[plan]}]}
        )
        return changed.to_dict()

    def retrieve(self, subscription_id: str) -> dict[str, Any]:
        return self.client.v1.subscriptions.retrieve(subscription_id).to_dict()


@pytest.fixture
def stripe_world(localstripe: str, default_plans: None) -> StripeWorld:
    """Products and monthly prices for pro and team (localstripe serves legacy plans, whose
    ids Stripe accepts as price ids), stored on the plans as sync_stripe_plans would."""
    world = StripeWorld(client=stripe_test_client(localstripe))
    suffix = uuid.uuid4().hex[:8]
    for plan in Plan.objects.filter(is_default=False):
        product = world.client.v1.products.create(
            params={"id": f"atelier-{plan.slug}-{suffix}", "name": plan.name}
        )
        price = world.client.v1.plans.create(
            params={
                "id": f"price_{plan.slug}_{suffix}",
                "product": product.id,
                "amount": plan.price_cents,
                "currency": "usd",
                "interval": "month",
            }
        )
        plan.stripe_product_id, plan.stripe_price_id = product.id, price.id
        plan.save(update_fields=["stripe_product_id", "stripe_price_id"])
        world.prices[plan.slug] = price.id
    return world


def sign(payload: bytes, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    signed = f"{timestamp}.".encode() + payload
    signature = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={signature}"


def event_payload(event_type: str, obj: dict[str, Any], event_id: str | None = None) -> bytes:
    event = {
        "id": event_id or f"evt_{uuid.uuid4().hex[:16]}",
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "livemode": False,
        "data": {"object": obj},
    }
    return json.dumps(event).encode()


def post_webhook(
    payload: bytes, *, signature: str | None = None, client: Client | None = None
) -> Any:
    headers = {} if signature == "" else {"HTTP_STRIPE_SIGNATURE": signature or sign(payload)}
    return (client or Client()).post(
        WEBHOOK_PATH, data=payload, content_type="application/json", **headers
    )


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    params: dict[str, str]


Responder = Callable[[RecordedRequest], tuple[int, dict[str, Any]]]


class StripeRecorder(stripe.HTTPClient):
    """Stripe's network as seen by the platform: each request is recorded and answered by
    the test's responder, as Stripe would answer it."""

    name = "recorder"

    def __init__(self, responder: Responder) -> None:
        super().__init__()
        self.responder = responder
        self.requests: list[RecordedRequest] = []

    def request(
        self,
        method: str,
        url: str,
        headers: Any,
        post_data: Any = None,
        *,
        _usage: Any = None,
    ) -> tuple[str, int, dict[str, str]]:
        parts = urlsplit(url)
        body = post_data.decode() if isinstance(post_data, bytes) else (post_data or "")
        recorded = RecordedRequest(
            method=method.upper(),
            path=parts.path,
            headers=dict(headers or {}),
            params=dict(parse_qsl(body or parts.query, keep_blank_values=True)),
        )
        self.requests.append(recorded)
        status, answer = self.responder(recorded)
        return json.dumps(answer), status, {"request-id": f"req_{len(self.requests)}"}

    def close(self) -> None:
        pass

    def writes(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == "POST"]


@pytest.fixture
def stripe_boundary(
    settings: SettingsWrapper, monkeypatch: pytest.MonkeyPatch
) -> Callable[[Responder], StripeRecorder]:
    """Point the platform at a recording Stripe; returns a function taking the responder."""
    settings.STRIPE_SECRET_KEY = SECRET_KEY
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.STRIPE_API_BASE = "https://api.stripe.test"

    def install(responder: Responder) -> StripeRecorder:
        recorder = StripeRecorder(responder)
        monkeypatch.setattr(stripe_client_module, "HTTP_CLIENT", recorder)
        return recorder

    return install


def stripe_error(status: int, message: str, code: str = "resource_missing") -> tuple[int, dict]:
    return status, {"error": {"type": "invalid_request_error", "message": message, "code": code}}
