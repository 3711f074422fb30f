"""The plan timeline: which plan a workspace's subscription gives it, and when.

Everything here works on the models and on a `SubscriptionState` (what the platform needs
from a Stripe subscription object); nothing calls Stripe, so the rules are testable without
it. An upgrade applies at once, a downgrade at the end of the paid period, a failed payment
keeps the plan for a grace period, and every change of plan is logged with its cause.
Stripe's webhooks (billing/stripe_webhooks.py) read a subscription and hand its state here.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import Workspace
from billing.models import Plan, StripeEvent, Subscription
from billing.plan_changes import plan_changes_log, plan_schedule
from billing.selectors import default_plan
from config.errors import DomainError

# A row whose subscription a new one may take over: it ended, or was never paid for. Any
# other status holds the workspace's one subscription (checkout refuses to start a second).
REPLACEABLE_STATUSES = (*Subscription.ENDED_STATUSES, Subscription.Status.INCOMPLETE)


class UnknownPrice(Exception):
    """A subscription is on a price no plan maps to: fix the plan, then replay the event.

    Not a refusal: the operator's fix makes the same event succeed, so a webhook carrying
    it asks Stripe to deliver it again."""


class SubscriptionRefused(DomainError):
    """A subscription state that can never be applied as it is: applying it again later
    fails the same way."""


class SecondSubscription(SubscriptionRefused):
    """A workspace has one subscription: another live one never replaces it (two Checkouts
    paid in two tabs). The Checkout's completion refunds and cancels the second."""

    code = "second_subscription"

    def __init__(self, *, current: str, state: SubscriptionState) -> None:
        super().__init__(
            f"The workspace already has the subscription {current}; {state.id} would be a "
            "second one.",
            current=current,
            second=state.id,
        )


class SubscriptionNotOurs(SubscriptionRefused):
    code = "unknown_subscription"

    def __init__(self, state: SubscriptionState) -> None:
        super().__init__(
            f"No workspace owns {state.id} (customer {state.customer_id or '?'}): it was "
            "not started from a workspace's Checkout."
        )


def stripe_time(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), tz=UTC) if value else None


def stripe_id(value: Any) -> str:
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
            customer_id=stripe_id(data.get("customer")),
            status=str(data.get("status") or ""),
            price_id=stripe_id(price),
            product_id=stripe_id(price.get("product")) if isinstance(price, dict) else "",
            current_period_end=stripe_time(period_end),
            cancel_at_period_end=bool(data.get("cancel_at_period_end")),
            created=stripe_time(data.get("created")),
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
) -> tuple[Subscription, str]:
    """Apply a subscription's state as read from Stripe at `read_at`; return the row and what
    happened. An upgrade applies now, a downgrade at the end of the paid period, a failed
    payment starts the grace period, and every change of plan is logged with its cause.
    Raises SubscriptionNotOurs for a subscription no workspace owns, and SecondSubscription
    for a live one that is not the live subscription the workspace already has."""
    workspace = _workspace_for(state, workspace)
    if workspace is None:
        raise SubscriptionNotOurs(state)
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
            if state.ended:
                return row, f"ignored: {state.id} is not the workspace's current subscription"
            if row.status not in REPLACEABLE_STATUSES:
                raise SecondSubscription(current=row.stripe_subscription_id, state=state)
            older = (
                state.created and row.stripe_created_at and state.created < row.stripe_created_at
            )
            if row.status not in Subscription.ENDED_STATUSES and older:
                return row, f"ignored: {state.id} is not the workspace's current subscription"
    before = plan_schedule(row, now, fallback)
    old_status = row.status
    switching = row.stripe_subscription_id != state.id

    # A downgrade whose date has come becomes the plan.
    pending = row.pending_plan if row.pending_plan_id else None
    if pending is not None and row.pending_plan_at and row.pending_plan_at <= now:
        row.plan, row.pending_plan, row.pending_plan_at = pending, None, None
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

    after = plan_schedule(row, now, fallback)
    changes = plan_changes_log(
        subscription=row, before=before, after=after, old_status=old_status, now=now,
        fallback=fallback, event=event,
    )  # fmt: skip
    summary = f"{state.id} {state.status} on {row.plan.slug}"
    if changes:
        summary += "; " + ", ".join(
            f"{c.cause}: {c.from_plan.slug}→{c.to_plan.slug}" for c in changes
        )
    return row, summary
