"""Stripe webhooks: verify, store once by event id, claim, and dispatch to the plan timeline.

An event is a hint that something changed, never the state itself: for a subscription the
handler reads the subscription from Stripe and applies what it finds
(billing/subscriptions.py). A late, duplicated or reordered event therefore re-applies the
newest state. `customer.subscription.deleted` is the exception: a canceled subscription
never comes back, so its payload is final. Applying is guarded twice: a read older than the
one stored is ignored, and an ended subscription is never revived by another event for it.

Stripe delivers anything but a 2xx again, for days. So an event that can never be
processed is recorded as failed and acknowledged, and only a failure that may pass later
(Stripe or the database out of reach, an unmapped price, a bug) is answered with a 5xx.

A little over 300 lines: verification, storage, claiming and dispatch are one path an event
takes, read top to bottom.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import stripe
from django.conf import settings
from django.db import IntegrityError, InterfaceError, OperationalError, transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.models import Workspace
from billing.checkouts import (
    checkout_complete,
    checkout_expire,
    checkout_for_completion,
    checkout_refuse,
)
from billing.models import CheckoutSession, StripeEvent
from billing.stripe_client import BillingNotConfigured, billing_enabled
from billing.stripe_services import (
    subscription_read,
    subscription_refund_and_cancel,
    subscription_sync,
)
from billing.subscriptions import (
    SecondSubscription,
    SubscriptionRefused,
    SubscriptionState,
    stripe_id,
    stripe_time,
    subscription_apply_state,
)
from config.errors import DomainError, ServiceUnavailable
from config.metrics import STRIPE_EVENTS, stripe_event_type_label

logger = logging.getLogger(__name__)

SUBSCRIPTION_EVENTS = {
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.paused",
    "customer.subscription.resumed",
}
INVOICE_EVENTS = {"invoice.paid", "invoice.payment_succeeded", "invoice.payment_failed"}
CHECKOUT_EVENTS = {"checkout.session.completed", "checkout.session.expired"}
# A row left "started" this long ago belongs to a process that died: a redelivery retries it.
STALE_START = timedelta(minutes=10)


class WebhookRejected(DomainError):
    code = "invalid_signature"


class EventUnprocessable(DomainError):
    """A signed event that can never be processed as sent: malformed, or about an object
    Stripe or the platform does not know. It is recorded as failed with the reason and
    acknowledged, since Stripe delivers anything but a 2xx again for days."""

    code = "stripe_event_unprocessable"


class WebhookProcessingFailed(DomainError):
    """Processing failed in a way a redelivery may not repeat (an unmapped price the operator
    can fix, a bug a deploy fixes): Stripe delivers the event again."""

    code = "webhook_processing_failed"

    def __init__(self, event: StripeEvent) -> None:
        super().__init__(f"Event {event.event_id} was stored but could not be processed.")


# What a redelivery cannot change: acknowledged, so that Stripe stops delivering it.
PERMANENT_FAILURES = (EventUnprocessable, SubscriptionRefused)
# The database refused for now (busy, a lock timeout, a lost connection).
DATABASE_BUSY = (OperationalError, InterfaceError)
DATABASE_RETRY_AFTER = 30  # seconds


def _database_busy() -> ServiceUnavailable:
    return ServiceUnavailable(
        "The database is busy; the event was not processed and Stripe will deliver it again.",
        retry_after=DATABASE_RETRY_AFTER,
    )


def _event_object(event: StripeEvent) -> dict[str, Any]:
    """The object an event is about (`data.object`), which every handled type needs."""
    data = event.payload.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict) or not obj.get("id"):
        raise EventUnprocessable(f"Event {event.event_id} carries no object with an id.")
    return obj


def _second_subscription_undo(checkout: CheckoutSession, state: SubscriptionState) -> None:
    """Refuse a Checkout whose subscription would be the workspace's second: refund it and
    cancel it in Stripe, then say so as the reason the event is refused."""
    checkout_refuse(checkout=checkout, subscription_id=state.id)
    done = subscription_refund_and_cancel(subscription_id=state.id)
    raise EventUnprocessable(
        f"Checkout {checkout.stripe_session_id} made a second subscription for the workspace, "
        f"refused: {done}."
    )


def _checkout_completed(
    event: StripeEvent, session: dict[str, Any]
) -> tuple[Workspace | None, str]:
    if session.get("mode") != "subscription" or not session.get("subscription"):
        return None, "ignored: not a subscription checkout"
    checkout = checkout_for_completion(
        session_id=str(session["id"]), reference=str(session.get("client_reference_id") or "")
    )
    state, read_at = subscription_read(stripe_id(session["subscription"]))
    if checkout.status == CheckoutSession.Status.REFUSED:
        _second_subscription_undo(checkout, state)  # a redelivery: finish the undoing
    try:
        _row, outcome = checkout_complete(
            checkout=checkout, state=state, read_at=read_at, event=event
        )
    except SecondSubscription:
        _second_subscription_undo(checkout, state)
    return checkout.workspace, outcome


def _invoice_subscription_id(invoice: dict[str, Any]) -> str:
    parent = invoice.get("parent") or {}
    details = parent.get("subscription_details") or {}
    return stripe_id(invoice.get("subscription") or details.get("subscription"))


def _dispatch(event: StripeEvent) -> tuple[Workspace | None, str]:
    if event.type not in CHECKOUT_EVENTS | SUBSCRIPTION_EVENTS | INVOICE_EVENTS:
        return None, f"ignored: {event.type} is not handled"
    obj = _event_object(event)
    if event.type == "checkout.session.completed":
        return _checkout_completed(event, obj)
    if event.type == "checkout.session.expired":
        return None, checkout_expire(session_id=str(obj["id"]))
    if event.type == "customer.subscription.deleted":
        # Final: apply the payload as read when Stripe created the event.
        row, outcome = subscription_apply_state(
            state=SubscriptionState.from_stripe(obj), read_at=event.stripe_created_at, event=event
        )
        return row.workspace, outcome
    if event.type in SUBSCRIPTION_EVENTS:
        row, outcome = subscription_sync(subscription_id=obj["id"], event=event)
        return row.workspace, outcome
    if event.type in INVOICE_EVENTS:
        subscription_id = _invoice_subscription_id(obj)
        if not subscription_id:
            return None, "ignored: invoice without a subscription"
        row, outcome = subscription_sync(subscription_id=subscription_id, event=event)
        return row.workspace, outcome
    return None, f"ignored: {event.type} is not handled"


def _failure(exc: Exception, event: StripeEvent) -> DomainError:
    """What a processing failure means for Stripe's redelivery."""
    if isinstance(exc, DomainError):
        return exc  # permanent ones are acknowledged; the others map to a 5xx (Stripe's, 502)
    if isinstance(exc, DATABASE_BUSY):
        return _database_busy()
    return WebhookProcessingFailed(event)


def _process(event: StripeEvent) -> tuple[StripeEvent, DomainError | None]:
    failure: DomainError | None = None
    try:
        workspace, outcome = _dispatch(event)
    except Exception as exc:  # recorded for the operator, who can replay the event
        failure = _failure(exc, event)
        if isinstance(failure, PERMANENT_FAILURES):
            logger.warning("Stripe event %s (%s) refused: %s", event.event_id, event.type, exc)
        else:
            logger.exception("Stripe event %s (%s) failed", event.event_id, event.type)
        event.status = StripeEvent.Status.FAILED
        event.error = f"{type(exc).__name__}: {exc}"
        event.outcome = ""
    else:
        event.status = StripeEvent.Status.SUCCEEDED
        event.error = ""
        event.outcome = outcome[:300]
        event.workspace = workspace or event.workspace
    event.processed_at = timezone.now()
    event.save(update_fields=["status", "error", "outcome", "workspace", "processed_at"])
    return event, failure


def stripe_event_process(*, event: StripeEvent) -> StripeEvent:
    """Process a claimed (started) event: succeeded with its outcome, or failed with the
    error. A failure leaves nothing of the event half-applied: each handler reads Stripe
    first and then writes everything it changes in one transaction, which the failure
    rolls back, and the event row records the attempt. One write is kept on purpose: a
    Checkout refused as a second subscription stays marked refused even if Stripe then
    fails to refund or cancel it, so that the redelivery finishes the undoing."""
    return _process(event)[0]


def _claim(event_id: str) -> bool:
    """Take a stored event for processing: one that failed, or one whose processor died."""
    now = timezone.now()
    retry = Q(status=StripeEvent.Status.FAILED) | Q(
        status=StripeEvent.Status.STARTED, attempted_at__lt=now - STALE_START
    )
    return (
        StripeEvent.objects.filter(retry, event_id=event_id).update(
            status=StripeEvent.Status.STARTED,
            attempted_at=now,
            processed_at=None,
            attempts=F("attempts") + 1,
        )
        == 1
    )


@dataclass(frozen=True)
class WebhookResult:
    event: StripeEvent
    duplicate: bool
    refused: DomainError | None = None  # why the event can never be processed

    def body(self) -> dict[str, Any]:
        """What the webhook answers with its 200."""
        body: dict[str, Any] = {
            "received": True,
            "duplicate": self.duplicate,
            "status": self.event.status,
        }
        if self.refused is not None:
            body["error"] = {"code": self.refused.code, "message": self.refused.message}
        return body


def _store(data: dict[str, Any]) -> tuple[StripeEvent, bool]:
    """The event's row, and whether this delivery claimed it for processing."""
    try:
        with transaction.atomic():
            event = StripeEvent.objects.create(
                event_id=str(data["id"]),
                type=str(data["type"]),
                payload=data,
                stripe_created_at=stripe_time(data.get("created")) or timezone.now(),
            )
    except IntegrityError:
        claimed = _claim(str(data["id"]))
        return StripeEvent.objects.get(event_id=data["id"]), claimed
    return event, True


def stripe_webhook_receive(*, payload: bytes, signature: str | None) -> WebhookResult:
    """Verify a webhook on its raw body, store it once by event id and process it.

    A bad or missing signature, a stale timestamp (Stripe's default tolerance) or a body
    that is not an event raises WebhookRejected and stores nothing. A duplicate of an event
    that succeeded or is being processed changes nothing; one that failed is retried.

    An event that can never be processed (malformed, about a subscription Stripe or no
    workspace knows, a second subscription) is recorded as failed and returned with the
    reason, to be acknowledged. A failure that may pass (Stripe or the database out of
    reach, an unmapped price, a bug) is recorded and raised, so the answer is a 5xx and
    Stripe delivers the event again."""
    if not billing_enabled() or not settings.STRIPE_WEBHOOK_SECRET:
        raise BillingNotConfigured()
    try:
        stripe.Webhook.construct_event(payload, signature or "", settings.STRIPE_WEBHOOK_SECRET)
        data = json.loads(payload)
    except stripe.SignatureVerificationError as exc:
        STRIPE_EVENTS.labels("unverified", "rejected").inc()
        raise WebhookRejected(f"The Stripe signature does not verify: {exc.user_message}") from None
    except ValueError:
        STRIPE_EVENTS.labels("unverified", "rejected").inc()
        raise WebhookRejected("The body is not a Stripe event.") from None
    if not isinstance(data, dict) or not data.get("id") or not data.get("type"):
        STRIPE_EVENTS.labels("unverified", "rejected").inc()
        raise WebhookRejected("The body is not a Stripe event.")
    counted = STRIPE_EVENTS.labels(stripe_event_type_label(str(data["type"])), "retry")
    try:
        event, claimed = _store(data)
        if not claimed:
            STRIPE_EVENTS.labels(stripe_event_type_label(event.type), "duplicate").inc()
            return WebhookResult(event, duplicate=True)
        event, failure = _process(event)
    except DATABASE_BUSY:
        counted.inc()
        raise _database_busy() from None
    except Exception:
        counted.inc()
        raise
    if failure is None or isinstance(failure, PERMANENT_FAILURES):
        STRIPE_EVENTS.labels(stripe_event_type_label(event.type), event.status).inc()
        return WebhookResult(event, duplicate=False, refused=failure)
    counted.inc()
    raise failure


def stripe_event_replay(*, event: StripeEvent) -> StripeEvent:
    """Process a stored event again (the admin's replay): safe, because processing reads
    Stripe's current state and applying a state twice changes nothing."""
    StripeEvent.objects.filter(pk=event.pk).update(
        status=StripeEvent.Status.STARTED, attempted_at=timezone.now(), processed_at=None,
        attempts=F("attempts") + 1,
    )  # fmt: skip
    event.refresh_from_db()
    return stripe_event_process(event=event)
