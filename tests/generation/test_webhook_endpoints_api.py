"""A workspace's webhook endpoints and deliveries in the API: its own, and nobody else's."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from generation.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from tests.conftest import Person


@pytest.fixture
def alices_endpoint(alice: Person) -> dict[str, object]:
    answer = alice.client().post(
        "/api/v1/webhooks",
        {"url": "https://hooks.example.com/atelier", "events": ["progress"]},
        format="json",
    )
    assert answer.status_code == 201, answer.content
    return answer.json()


@pytest.fixture
def alices_delivery(alice: Person, alices_endpoint: dict[str, object]) -> WebhookDelivery:
    delivery = WebhookDelivery.objects.create(
        workspace=alice.workspace, endpoint_id=alices_endpoint["id"], url="https://hooks.example.com/atelier",
        event="completed", status="failed", attempts=1, retry_until=timezone.now(),
        payload={"type": "job.completed", "data": {}},
    )  # fmt: skip
    WebhookAttempt.objects.create(
        delivery=delivery, number=1, started_at=timezone.now() - timedelta(seconds=5),
        latency_ms=12, response_status=500, error="boom",
    )  # fmt: skip
    return delivery


def test_the_secret_is_shown_once_and_completed_is_always_sent(
    alice: Person, alices_endpoint: dict[str, object]
) -> None:
    assert str(alices_endpoint["secret"]).startswith("whsec_")
    assert alices_endpoint["events"] == ["completed", "progress"]
    listed = alice.client().get("/api/v1/webhooks").json()
    assert [item["id"] for item in listed] == [alices_endpoint["id"]]
    assert "secret" not in listed[0]
    one = alice.client().get(f"/api/v1/webhooks/{alices_endpoint['id']}").json()
    assert "secret" not in one


def test_a_private_url_is_refused(alice: Person) -> None:
    answer = alice.client().post("/api/v1/webhooks", {"url": "https://192.168.1.5/"}, format="json")
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "url"
    assert not WebhookEndpoint.objects.exists()


def test_alice_disables_and_enables_her_endpoint(
    alice: Person, alices_endpoint: dict[str, object]
) -> None:
    url = f"/api/v1/webhooks/{alices_endpoint['id']}"
    assert alice.client().patch(url, {"enabled": False}, format="json").json()["enabled"] is False
    assert alice.client().patch(url, {"enabled": True}, format="json").json()["enabled"] is True
    assert alice.client().delete(url).status_code == 204
    assert not WebhookEndpoint.objects.exists()


def test_alice_sees_her_deliveries_with_their_attempts_and_redelivers(
    alice: Person, alices_delivery: WebhookDelivery
) -> None:
    [listed] = alice.client().get("/api/v1/webhook-deliveries").json()["results"]
    assert listed["webhook_id"] == f"msg_{alices_delivery.id.hex}"
    assert listed["attempts"][0]["response_status"] == 500
    answer = alice.client().post(f"/api/v1/webhook-deliveries/{alices_delivery.id}/redeliver")
    assert answer.status_code == 202 and answer.json()["status"] == "pending"
    again = alice.client().post(f"/api/v1/webhook-deliveries/{alices_delivery.id}/redeliver")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "delivery_pending"


def test_bob_cannot_see_or_touch_alices_endpoints_or_deliveries(
    bob: Person, alices_endpoint: dict[str, object], alices_delivery: WebhookDelivery
) -> None:
    client = bob.client()
    endpoint = f"/api/v1/webhooks/{alices_endpoint['id']}"
    assert client.get(endpoint).status_code == 404
    assert client.patch(endpoint, {"enabled": False}, format="json").status_code == 404
    assert client.delete(endpoint).status_code == 404
    assert client.get(f"/api/v1/webhook-deliveries/{alices_delivery.id}").status_code == 404
    redeliver = f"/api/v1/webhook-deliveries/{alices_delivery.id}/redeliver"
    assert client.post(redeliver).status_code == 404
    assert client.get("/api/v1/webhooks").json() == []
    assert client.get("/api/v1/webhook-deliveries").json()["results"] == []
    filtered = client.get(f"/api/v1/webhook-deliveries?endpoint={alices_endpoint['id']}")
    assert filtered.json()["results"] == []
    assert WebhookEndpoint.objects.get().enabled is True


def test_charlie_needs_a_key(charlie: APIClient, alices_endpoint: dict[str, object]) -> None:
    assert charlie.get("/api/v1/webhooks").status_code == 401
    assert charlie.get("/api/v1/webhooks/default/secret").status_code == 401


def test_the_per_job_signing_secret_is_the_workspaces_own(alice: Person, bob: Person) -> None:
    mine = alice.client().get("/api/v1/webhooks/default/secret").json()["key"]
    assert mine.startswith("whsec_")
    assert alice.client().get("/api/v1/webhooks/default/secret").json()["key"] == mine
    assert bob.client().get("/api/v1/webhooks/default/secret").json()["key"] != mine
