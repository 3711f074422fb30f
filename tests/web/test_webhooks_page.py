"""The webhooks page: owners and admins manage the workspace's endpoints; bob sees none of
alice's, and a plain member cannot manage them."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import Membership
from generation.models import WebhookDelivery, WebhookEndpoint
from tests.conftest import Person, make_person
from tests.web.conftest import signed_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def alices_endpoint(alice: Person, alice_web: Client) -> WebhookEndpoint:
    page = alice_web.post("/webhooks/", {"url": "https://hooks.example.com/a", "events": ["start"]})
    assert page.status_code == 201
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.secret in page.content.decode()  # shown this once
    return endpoint


@pytest.fixture
def alices_delivery(alice: Person, alices_endpoint: WebhookEndpoint) -> WebhookDelivery:
    return WebhookDelivery.objects.create(
        workspace=alice.workspace, endpoint=alices_endpoint, url=alices_endpoint.url,
        event="completed", status="failed", retry_until=timezone.now(),
    )  # fmt: skip


def test_alice_adds_an_endpoint_and_sees_its_secret_once(
    alice_web: Client, alices_endpoint: WebhookEndpoint
) -> None:
    assert alices_endpoint.events == ["completed", "start"]
    page = alice_web.get("/webhooks/").content.decode()
    assert "https://hooks.example.com/a" in page
    assert alices_endpoint.secret not in page


def test_a_private_address_is_refused_with_a_sentence(alice_web: Client) -> None:
    page = alice_web.post("/webhooks/", {"url": "https://10.0.0.7/hook"})
    assert page.status_code == 400
    assert "not a public address" in page.content.decode()
    assert not WebhookEndpoint.objects.exists()


def test_alice_disables_and_redelivers(
    alice_web: Client, alices_endpoint: WebhookEndpoint, alices_delivery: WebhookDelivery
) -> None:
    assert alice_web.post(f"/webhooks/{alices_endpoint.id}/toggle/").status_code == 302
    alices_endpoint.refresh_from_db()
    assert alices_endpoint.enabled is False
    redeliver = f"/webhooks/deliveries/{alices_delivery.id}/redeliver/"
    assert alice_web.post(redeliver).status_code == 302
    alices_delivery.refresh_from_db()
    assert alices_delivery.status == "pending"


def test_bob_cannot_see_or_touch_alices_webhooks(
    bob_web: Client, alices_endpoint: WebhookEndpoint, alices_delivery: WebhookDelivery
) -> None:
    page = bob_web.get("/webhooks/").content.decode()
    assert "hooks.example.com" not in page
    assert bob_web.post(f"/webhooks/{alices_endpoint.id}/toggle/").status_code == 404
    assert bob_web.post(f"/webhooks/{alices_endpoint.id}/delete/").status_code == 404
    redeliver = f"/webhooks/deliveries/{alices_delivery.id}/redeliver/"
    assert bob_web.post(redeliver).status_code == 404
    alices_endpoint.refresh_from_db()
    alices_delivery.refresh_from_db()
    assert alices_endpoint.enabled and alices_delivery.status == "failed"


def test_a_plain_member_cannot_manage_webhooks(alice: Person) -> None:
    dora = make_person("dora@example.com")
    Membership.objects.create(user=dora.user, workspace=alice.workspace, role="member")
    client = signed_in(dora)
    client.post("/workspaces/switch/", {"workspace": str(alice.workspace.id)})
    assert client.get("/webhooks/").status_code == 403


def test_charlie_is_sent_to_log_in(charlie_web: Client) -> None:
    assert charlie_web.get("/webhooks/").status_code == 302
