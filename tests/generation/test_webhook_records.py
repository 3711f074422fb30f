"""Webhook deliveries: the admin shows them and sends them again; old ones are deleted."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import User
from generation.maintenance import webhook_deliveries_expire
from generation.models import WebhookAttempt, WebhookDelivery
from tests.conftest import Person

pytestmark = pytest.mark.django_db


def delivery_for(person: Person, *, status: str, age_days: int = 0) -> WebhookDelivery:
    created = timezone.now() - timedelta(days=age_days)
    delivery = WebhookDelivery.objects.create(
        workspace=person.workspace, url="https://hooks.example.com/a", event="completed",
        status=status, attempts=1, retry_until=created, created_at=created,
    )  # fmt: skip
    WebhookAttempt.objects.create(
        delivery=delivery, number=1, started_at=created, latency_ms=40, response_status=502,
        error="HTTP 502: bad gateway",
    )  # fmt: skip
    return delivery


def test_operators_see_deliveries_with_their_attempts_and_redeliver(alice: Person) -> None:
    delivery = delivery_for(alice, status="failed")
    ops = Client()
    ops.force_login(User.objects.create_superuser("ops@example.com", "a long passphrase"))
    listing = ops.get("/admin/generation/webhookdelivery/")
    assert listing.status_code == 200 and "hooks.example.com" in listing.content.decode()
    page = ops.get(f"/admin/generation/webhookdelivery/{delivery.pk}/change/")
    assert "HTTP 502: bad gateway" in page.content.decode()
    ops.post(
        "/admin/generation/webhookdelivery/",
        {"action": "redeliver", "_selected_action": [str(delivery.pk)]},
    )
    delivery.refresh_from_db()
    assert delivery.status == "pending"


def test_finished_deliveries_past_their_retention_are_deleted(alice: Person, settings: Any) -> None:
    settings.WEBHOOK_DELIVERY_RETENTION_DAYS = 30
    old = delivery_for(alice, status="succeeded", age_days=31)
    old_pending = delivery_for(alice, status="pending", age_days=31)
    recent = delivery_for(alice, status="failed", age_days=29)
    assert webhook_deliveries_expire() == 1
    assert set(WebhookDelivery.objects.values_list("pk", flat=True)) == {old_pending.pk, recent.pk}
    assert not WebhookAttempt.objects.filter(delivery_id=old.pk).exists()
