"""Stripe webhooks: verify, store once, process, and converge on Stripe's state.

An event is a hint that something changed, never the state itself: for a subscription the
handler reads the subscription from Stripe and applies what it finds. A late, duplicated
or reordered event therefore re-applies the newest state. `customer.subscription.deleted`
is the exception: a canceled subscription never comes back, so its payload is final.
Applying is guarded twice: a read older than the one stored is ignored, and an ended
subscription is never revived by another event for it.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import stripe
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.models import Workspace
from billing.models import Plan, PlanChange, StripeEvent, Subscription
from billing.selectors import default_plan
from billing.stripe_client import (
    BillingNotConfigured,
    as_dict,
    billing_enabled,
    stripe_client,
)
from config.errors import DomainError

logger = logging.getLogger(__name__)

SUBSCRIPTION_EVENTS = {
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.paused",
    "customer.subscription.resumed",
}
INVOICE_EVENTS = {"invoice.paid", "invoice.payment_succeeded", "invoice.payment_failed"}
# A row left "started" this long ago belongs to a process that died: a redelivery retries it.
STALE_START = timedelta(minutes=10)


class WebhookRejected(DomainError):
    code = "invalid_signature"


class UnknownPrice(Exception):
    """A subscription is on a price no plan maps to: fix the plan, then replay the event."""


def _timestamp(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), tz=UTC) if value else None


def _id(value: Any) -> str:
    """An id from a field that holds an id or an expanded object."""
    if isinstance(value, dict):
        return str(value.get("id") or "")
    return str(value or "")


@dataclass(frozen=True)
class SubscriptionState:
    """What the platform needs from a Stripe subscription object."""

    id: str
    customer_id: str
    status: str
    price_id: str
    product_id: str
    current_period_end: datetime | None
    cancel_at_period_end: bool
    created: datetime | None
    workspace_id: str

    @classmethod
    def from_stripe(cls, data: dict[str, Any]) -> SubscriptionState:
        items = (data.get("items") or {}).get("data") or [{}]
        item = items[0]
        # Production subscriptions name a price; legacy plans (and localstripe) a plan,
        # whose id Stripe also accepts as a price id.
        price = item.get("price") or item.get("plan") or data.get("plan") or {}
        period_end = item.get("current_period_end") or data.get("current_period_end")
        return cls(
            id=str(data["id"]),
            customer_id=_id(data.get("customer")),
            status=str(data.get("status") or ""),
            price_id=_id(price),
            product_id=_id(price.get("product")) if isinstance(price, dict) else "",
            current_period_end=_timestamp(period_end),
            cancel_at_period_end=bool(data.get("cancel_at_period_end")),
            created=_timestamp(data.get("created")),
            workspace_id=str((data.get("metadata") or {}).get("workspace_id") or ""),
        )

    @property
    def ended(self) -> bool:
        return self.status in Subscription.ENDED_STATUSES


def plan_for_price(*, price_id: str, product_id: str) -> Plan:
    plan = Plan.objects.filter(stripe_price_id=price_id).first() if price_id else None
    if plan is None and product_id:
        # A subscriber on an older price of the same product keeps that product's plan.
        plan = Plan.objects.filter(stripe_product_id=product_id).first()
    if plan is None:
        raise UnknownPrice(
            f"Stripe price {price_id or '?'} (product {product_id or '?'}) is not the price of "
            "any plan. Run manage.py sync_stripe_plans or set the plan's stripe_price_id, "
            "then replay this event."
        )
    return plan


# The plan timeline of a subscription row: (from when, plan) now and at each scheduled change.
Schedule = list[tuple[datetime, Plan]]


def _schedule(subscription: Subscription | None, now: datetime, fallback: Plan) -> Schedule:
    if subscription is None:
        return [(now, fallback)]
    points = [now]
    for at in (subscription.pending_plan_at, subscription.grace_period_ends_at):
        if at is not None and at > now and subscription.status in Subscription.PLAN_STATUSES:
            points.append(at)
    schedule: Schedule = []
    for at in sorted(points):
        plan = subscription.plan_at(at) or fallback
        if not schedule or schedule[-1][1] != plan:
            schedule.append((at, plan))
    return schedule


def _now_cause(*, before: Plan, after: Plan, old_status: str, fallback: Plan) -> str:
    if after == fallback:
        return PlanChange.Cause.CANCELED
    if old_status in Subscription.PAYMENT_FAILING_STATUSES and before == fallback:
        return PlanChange.Cause.PAYMENT_RECOVERED
    if before == fallback:
        return PlanChange.Cause.SUBSCRIBED
    if after.price_cents >= before.price_cents:
        return PlanChange.Cause.UPGRADED
    return PlanChange.Cause.DOWNGRADED


def _log_changes(
    *,
    subscription: Subscription,
    before: Schedule,
    after: Schedule,
    old_status: str,
    now: datetime,
    fallback: Plan,
    event: StripeEvent | None,
) -> list[PlanChange]:
    """Record what the new state changes: the plan now, and changes scheduled or cancelled."""
    detail = f"Stripe subscription {subscription.stripe_subscription_id}: {subscription.status}"
    changes: list[PlanChange] = []

    def log(from_plan: Plan, to_plan: Plan, at: datetime, cause: str, text: str) -> None:
        changes.append(
            PlanChange(
                workspace=subscription.workspace, from_plan=from_plan, to_plan=to_plan,
                effective_at=at, cause=cause, detail=text[:300], stripe_event=event,
            )
        )  # fmt: skip

    if before[0][1] != after[0][1]:
        cause = _now_cause(
            before=before[0][1], after=after[0][1], old_status=old_status, fallback=fallback
        )
        log(before[0][1], after[0][1], now, cause, detail)
    old_points = {(at, plan.pk) for at, plan in before[1:]}
    new_points = {(at, plan.pk) for at, plan in after[1:]}
    for index, (at, plan) in enumerate(after[1:], start=1):
        if (at, plan.pk) not in old_points:
            grace = at == subscription.grace_period_ends_at
            cause = (
                PlanChange.Cause.PAYMENT_FAILED if grace else PlanChange.Cause.DOWNGRADE_SCHEDULED
            )
            log(
                after[index - 1][1],
                plan,
                at,
                cause,
                f"{detail}; takes effect at {at:%Y-%m-%d %H:%M} UTC",
            )
    for at, plan in before[1:]:
        if (at, plan.pk) not in new_points:
            kept = subscription.plan_at(at) or fallback
            recovered = subscription.status not in Subscription.PAYMENT_FAILING_STATUSES
            cause = (
                PlanChange.Cause.PAYMENT_RECOVERED
                if plan == fallback and recovered
                else PlanChange.Cause.SCHEDULE_CANCELLED
            )
            log(
                kept,
                kept,
                now,
                cause,
                f"{detail}; the change to {plan} at {at:%Y-%m-%d %H:%M} UTC is cancelled",
            )
    return PlanChange.objects.bulk_create(changes)


def _workspace_for(state: SubscriptionState, workspace: Workspace | None) -> Workspace | None:
    if workspace is not None:
        return workspace
    if state.workspace_id:
        try:
            found = Workspace.objects.filter(pk=uuid.UUID(state.workspace_id)).first()
        except ValueError:
            found = None
        if found is not None:
            return found
    row = (
        Subscription.objects.select_related("workspace")
        .filter(Q(stripe_subscription_id=state.id) | Q(stripe_customer_id=state.customer_id))
        .exclude(stripe_customer_id="", stripe_subscription_id="")
        .first()
    )
    return row.workspace if row else None


@transaction.atomic
def subscription_apply_state(
    *,
    state: SubscriptionState,
    read_at: datetime,
    workspace: Workspace | None = None,
    event: StripeEvent | None = None,
) -> tuple[Subscription | None, str]:
    """Apply a subscription's state as read from Stripe at `read_at`; return the row and what
    happened. An upgrade applies now, a downgrade at the end of the paid period, a failed
    payment starts the grace period, and every change of plan is logged with its cause."""
    workspace = _workspace_for(state, workspace)
    if workspace is None:
        return None, f"ignored: no workspace for {state.id} (customer {state.customer_id})"
    now = timezone.now()
    fallback = default_plan()
    new_plan = plan_for_price(price_id=state.price_id, product_id=state.product_id)
    # Make sure the row exists (racing creators are ignored), then lock it: a plain
    # single-table SELECT FOR UPDATE, which finds the row again after waiting for a lock.
    Subscription.objects.bulk_create(
        [Subscription(workspace=workspace, plan=new_plan, status=Subscription.Status.INCOMPLETE)],
        ignore_conflicts=True,
    )
    row = Subscription.objects.select_for_update().get(workspace=workspace)
    if row.stripe_subscription_id:
        same = row.stripe_subscription_id == state.id
        # An ended state is final, so it applies whenever it was read.
        if same and not state.ended and row.stripe_synced_at and read_at < row.stripe_synced_at:
            return row, f"ignored: a newer state of {state.id} is already applied"
        if same and row.status in Subscription.ENDED_STATUSES and not state.ended:
            return row, f"ignored: {state.id} has ended and cannot come back"
        if not same:
            row_live = row.status not in Subscription.ENDED_STATUSES
            older = (
                state.created and row.stripe_created_at and state.created < row.stripe_created_at
            )
            if state.ended or (row_live and older):
                return row, f"ignored: {state.id} is not the workspace's current subscription"
    before = _schedule(row, now, fallback)
    old_status = row.status
    switching = row.stripe_subscription_id != state.id

    # A downgrade whose date has come becomes the plan.
    if row.pending_plan_id and row.pending_plan_at and row.pending_plan_at <= now:
        row.plan, row.pending_plan, row.pending_plan_at = row.pending_plan, None, None
    plan_applies = not switching and row.plan_at(now) is not None
    paid_until = row.current_period_end if not switching else None
    if new_plan == row.plan:
        row.pending_plan, row.pending_plan_at = None, None
    elif (
        plan_applies
        and new_plan.price_cents < row.plan.price_cents
        and paid_until is not None
        and paid_until > now
    ):
        # Paid for the bigger plan until the period ends: keep it until then.
        if row.pending_plan != new_plan:
            row.pending_plan, row.pending_plan_at = new_plan, paid_until
    else:
        row.plan, row.pending_plan, row.pending_plan_at = new_plan, None, None

    row.status = state.status
    if state.status in Subscription.PAYMENT_FAILING_STATUSES:
        if row.grace_period_ends_at is None or switching:
            row.grace_period_ends_at = now + timedelta(hours=settings.BILLING_GRACE_PERIOD_HOURS)
    else:
        row.grace_period_ends_at = None
    if state.status in (Subscription.Status.ACTIVE, Subscription.Status.TRIALING):
        row.checkout_session_id = ""
    row.stripe_subscription_id = state.id
    row.stripe_customer_id = state.customer_id or row.stripe_customer_id
    row.current_period_end = state.current_period_end
    row.cancel_at_period_end = state.cancel_at_period_end
    row.stripe_created_at = state.created
    if switching or row.stripe_synced_at is None or read_at > row.stripe_synced_at:
        row.stripe_synced_at = read_at
    row.save()

    after = _schedule(row, now, fallback)
    changes = _log_changes(
        subscription=row, before=before, after=after, old_status=old_status, now=now,
        fallback=fallback, event=event,
    )  # fmt: skip
    summary = f"{state.id} {state.status} on {row.plan.slug}"
    if changes:
        summary += "; " + ", ".join(
            f"{c.cause}: {c.from_plan.slug}→{c.to_plan.slug}" for c in changes
        )
    return row, summary


def subscription_sync(
    *, subscription_id: str, workspace: Workspace | None = None, event: StripeEvent | None = None
) -> tuple[Subscription | None, str]:
    """Read a subscription from Stripe now and apply it. The read happens outside any
    transaction or lock; a read that loses a race to a newer one is ignored."""
    read_at = timezone.now()
    data = as_dict(stripe_client().v1.subscriptions.retrieve(subscription_id))
    return subscription_apply_state(
        state=SubscriptionState.from_stripe(data), read_at=read_at, workspace=workspace, event=event
    )


def _workspace_by_reference(reference: str) -> Workspace:
    try:
        return Workspace.objects.get(pk=uuid.UUID(reference))
    except (ValueError, Workspace.DoesNotExist):
        raise ValueError(f"client_reference_id {reference!r} is not a workspace") from None


def _checkout_completed(
    event: StripeEvent, session: dict[str, Any]
) -> tuple[Workspace | None, str]:
    if session.get("mode") != "subscription" or not session.get("subscription"):
        return None, "ignored: not a subscription checkout"
    workspace = _workspace_by_reference(str(session.get("client_reference_id") or ""))
    customer_id = _id(session.get("customer"))
    with transaction.atomic():
        row = Subscription.objects.select_for_update().filter(workspace=workspace).first()
        if row is not None and customer_id and not row.stripe_customer_id:
            row.stripe_customer_id = customer_id
            row.save(update_fields=["stripe_customer_id", "updated_at"])
    _row, outcome = subscription_sync(
        subscription_id=_id(session["subscription"]), workspace=workspace, event=event
    )
    Subscription.objects.filter(workspace=workspace, checkout_session_id=session.get("id")).update(
        checkout_session_id=""
    )
    return workspace, outcome


def _checkout_expired(session: dict[str, Any]) -> tuple[Workspace | None, str]:
    cleared = Subscription.objects.filter(checkout_session_id=session.get("id")).update(
        checkout_session_id=""
    )
    return None, f"checkout {session.get('id')} expired" + ("" if cleared else " (not pending)")


def _invoice_subscription_id(invoice: dict[str, Any]) -> str:
    parent = invoice.get("parent") or {}
    details = parent.get("subscription_details") or {}
    return _id(invoice.get("subscription") or details.get("subscription"))


def _dispatch(event: StripeEvent) -> tuple[Workspace | None, str]:
    obj = event.payload.get("data", {}).get("object", {})
    if event.type == "checkout.session.completed":
        return _checkout_completed(event, obj)
    if event.type == "checkout.session.expired":
        return _checkout_expired(obj)
    if event.type == "customer.subscription.deleted":
        # Final: apply the payload as read when Stripe created the event.
        row, outcome = subscription_apply_state(
            state=SubscriptionState.from_stripe(obj), read_at=event.stripe_created_at, event=event
        )
        return (row.workspace if row else None), outcome
    if event.type in SUBSCRIPTION_EVENTS:
        row, outcome = subscription_sync(subscription_id=obj["id"], event=event)
        return (row.workspace if row else None), outcome
    if event.type in INVOICE_EVENTS:
        subscription_id = _invoice_subscription_id(obj)
        if not subscription_id:
            return None, "ignored: invoice without a subscription"
        row, outcome = subscription_sync(subscription_id=subscription_id, event=event)
        return (row.workspace if row else None), outcome
    return None, f"ignored: {event.type} is not handled"


def stripe_event_process(*, event: StripeEvent) -> StripeEvent:
    """Process a claimed (started) event: succeeded with its outcome, or failed with the
    error. A failure rolls back everything the handler wrote."""
    try:
        workspace, outcome = _dispatch(event)
    except Exception as exc:  # recorded for the operator, who can replay the event
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
    return event


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


def stripe_webhook_receive(*, payload: bytes, signature: str | None) -> WebhookResult:
    """Verify a webhook on its raw body, store it once by event id and process it.

    A bad or missing signature, a stale timestamp (Stripe's default tolerance) or a body
    that is not an event raises WebhookRejected and stores nothing. A duplicate of an event
    that succeeded or is being processed changes nothing; one that failed is retried."""
    if not billing_enabled() or not settings.STRIPE_WEBHOOK_SECRET:
        raise BillingNotConfigured()
    try:
        stripe.Webhook.construct_event(payload, signature or "", settings.STRIPE_WEBHOOK_SECRET)
        data = json.loads(payload)
    except stripe.SignatureVerificationError as exc:
        raise WebhookRejected(f"The Stripe signature does not verify: {exc.user_message}") from None
    except ValueError:
        raise WebhookRejected("The body is not a Stripe event.") from None
    if not isinstance(data, dict) or not data.get("id") or not data.get("type"):
        raise WebhookRejected("The body is not a Stripe event.")
    try:
        with transaction.atomic():
            event = StripeEvent.objects.create(
                event_id=str(data["id"]),
                type=str(data["type"]),
                payload=data,
                stripe_created_at=_timestamp(data.get("created")) or timezone.now(),
            )
    except IntegrityError:
        if not _claim(str(data["id"])):
            return WebhookResult(StripeEvent.objects.get(event_id=data["id"]), duplicate=True)
        event = StripeEvent.objects.get(event_id=data["id"])
    return WebhookResult(stripe_event_process(event=event), duplicate=False)


def stripe_event_replay(*, event: StripeEvent) -> StripeEvent:
    """Process a stored event again (the admin's replay): safe, because processing reads
    Stripe's current state and applying a state twice changes nothing."""
    StripeEvent.objects.filter(pk=event.pk).update(
        status=StripeEvent.Status.STARTED, attempted_at=timezone.now(), processed_at=None,
        attempts=F("attempts") + 1,
    )  # fmt: skip
    event.refresh_from_db()
    return stripe_event_process(event=event)
