"""Webhooks from a real worker to a loopback receiver (allowed by WEBHOOK_ALLOWED_NETWORKS),
delivered by a real `webhooks` worker and verified with the `standardwebhooks` package."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.test import Client
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from generation.models import Job, WebhookDelivery, WebhookEndpoint
from generation.webhooks import signing_secret_for
from tests.conftest import make_person, small_job
from tests.e2e.conftest import WorkerProcess, start_worker
from tests.e2e.webhook_receiver import webhook_receiver

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

LOOPBACK = {"WEBHOOK_ALLOW_HTTP": "true", "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8"}


@pytest.fixture
def loopback_allowed(settings: Any) -> None:
    settings.WEBHOOK_ALLOW_HTTP = True
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]


@pytest.fixture(scope="module")
def webhooks_worker(
    django_db_setup: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    worker = start_worker(
        tmp_path_factory.mktemp("webhooks"), queues="webhooks", WEBHOOK_RETRY_BASE_MS="1000",
        WEBHOOK_DISABLE_AFTER="0", **LOOPBACK,
    )  # fmt: skip
    yield worker
    worker.stop()


def settled(delivery: WebhookDelivery, timeout: float = 30) -> WebhookDelivery:
    """The delivery once its worker recorded the last attempt (after the receiver answered)."""
    deadline = time.monotonic() + timeout
    while delivery.status == "pending" and time.monotonic() < deadline:
        time.sleep(0.1)
        delivery.refresh_from_db()
    return delivery


def verified(secret: str, received: list[Any]) -> list[dict[str, Any]]:
    """Each body, once its signature checks out (raises otherwise)."""
    return [Webhook(secret).verify(item.body, item.headers) for item in received]


def test_a_receiver_gets_start_throttled_progress_and_completed_all_signed(
    loopback_allowed: None, celery_worker: WorkerProcess, webhooks_worker: WorkerProcess
) -> None:
    alice = make_person("alice@example.com")
    with webhook_receiver() as receiver:
        answer = alice.client().post(
            "/api/v1/generations",
            small_job(
                width=128, height=128, webhook=receiver.url,
                webhook_events_filter=["start", "progress", "completed"],
            ),
            format="json",
        )  # fmt: skip
        assert answer.status_code == 202, answer.content
        assert answer.json()["webhook"] == receiver.url
        received = receiver.wait_until(
            lambda items: any(b'"job.completed"' in item.body for item in items)
        )
    bodies = verified(signing_secret_for(alice.workspace), received)
    types = [body["type"] for body in bodies]
    assert {"job.start", "job.progress", "job.completed"} <= set(types), types
    assert types.count("job.completed") == 1
    completed = next(body for body in bodies if body["type"] == "job.completed")
    assert completed["data"]["status"] == "succeeded"
    [image] = completed["data"]["images"]
    # The image's URL works without the key (for a limited time).
    url = urlsplit(image["url"])
    png = Client().get(f"{url.path}?{url.query}")
    assert png.status_code == 200 and b"".join(png.streaming_content).startswith(b"\x89PNG")
    # Each delivery has its own id; progress went out at most once every 500 ms.
    assert len({item.headers["webhook-id"] for item in received}) == len(received)
    progress = list(WebhookDelivery.objects.filter(event="progress").order_by("created_at"))
    gaps = [(b.created_at - a.created_at).total_seconds() for a, b in itertools.pairwise(progress)]
    assert all(gap >= 0.45 for gap in gaps), gaps
    assert {settled(d).status for d in WebhookDelivery.objects.all()} == {"succeeded"}


def test_500_twice_then_200_is_three_attempts_with_growing_delays_and_one_id(
    loopback_allowed: None, webhooks_worker: WorkerProcess
) -> None:
    # The priority lane: no worker takes the job, and cancelling finishes it.
    erin = make_person("erin@example.com", plan="pro")
    with webhook_receiver(500, 500, 200) as receiver:
        answer = erin.client().post(
            "/api/v1/generations", small_job(webhook=receiver.url), format="json"
        )
        assert answer.status_code == 202, answer.content
        erin.client().post(f"/api/v1/generations/{answer.json()['id']}/cancel")
        received = receiver.wait_for(3, timeout=60)
    assert len({item.headers["webhook-id"] for item in received}) == 1
    bodies = verified(signing_secret_for(erin.workspace), received)
    assert {body["data"]["status"] for body in bodies} == {"cancelled"}
    first_gap = received[1].at - received[0].at
    second_gap = received[2].at - received[1].at
    assert 0.9 <= first_gap < second_gap, (first_gap, second_gap)
    delivery = settled(WebhookDelivery.objects.get())
    assert delivery.status == "succeeded" and delivery.attempts == 3
    attempts = list(delivery.tries.values_list("response_status", "succeeded"))
    assert attempts == [(500, False), (500, False), (200, True)]


def test_a_redirect_to_a_private_address_is_not_followed(
    loopback_allowed: None, webhooks_worker: WorkerProcess
) -> None:
    erin = make_person("erin@example.com", plan="pro")
    with webhook_receiver((302, {"Location": "http://10.0.0.1/steal"})) as receiver:
        answer = erin.client().post(
            "/api/v1/generations", small_job(webhook=receiver.url), format="json"
        )
        erin.client().post(f"/api/v1/generations/{answer.json()['id']}/cancel")
        receiver.wait_for(1, timeout=60)
        delivery = settled(WebhookDelivery.objects.get())
    assert delivery.status == "failed" and delivery.attempts == 1  # not retried
    [attempt] = delivery.tries.all()
    assert attempt.response_status == 302
    assert "redirects are not followed" in attempt.error
    assert Job.objects.get().status == "cancelled"
    assert json.loads(json.dumps(delivery.payload))["type"] == "job.completed"


def test_registered_endpoints_get_their_own_signature_and_one_that_fails_is_disabled(
    loopback_allowed: None, webhooks_worker: WorkerProcess
) -> None:
    erin = make_person("erin@example.com", plan="pro")
    with webhook_receiver() as good, webhook_receiver(*[503] * 10) as bad:
        endpoints = [
            erin.client().post("/api/v1/webhooks", {"url": r.url}, format="json").json()
            for r in (good, bad)
        ]
        answer = erin.client().post("/api/v1/generations", small_job(), format="json")
        erin.client().post(f"/api/v1/generations/{answer.json()['id']}/cancel")
        [received] = good.wait_for(1, timeout=60)
        bad.wait_for(1, timeout=60)
        for _ in range(100):  # WEBHOOK_DISABLE_AFTER=0: the first failure disables it
            if not WebhookEndpoint.objects.get(pk=endpoints[1]["id"]).enabled:
                break
            time.sleep(0.1)
    [body] = verified(endpoints[0]["secret"], [received])
    assert body["type"] == "job.completed" and body["data"]["status"] == "cancelled"
    with pytest.raises(WebhookVerificationError):
        verified(signing_secret_for(erin.workspace), [received])  # not the per-job secret
    failing = WebhookEndpoint.objects.get(pk=endpoints[1]["id"])
    assert not failing.enabled and "503" in failing.disabled_reason
    # Its owner is told (the worker's mail goes to its console in tests).
    for _ in range(50):
        if "Atelier disabled a webhook endpoint" in webhooks_worker.log.read_text():
            break
        time.sleep(0.1)
    log = webhooks_worker.log.read_text()
    assert "Atelier disabled a webhook endpoint" in log and "erin@example.com" in log
