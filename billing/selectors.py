"""Reads for plans and quotas. Each is O(1) in the workspace's history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Q
from django.utils import timezone

from accounts.models import Workspace
from billing.models import Plan, QuotaCounter, QuotaOverride, Subscription

# Statuses in which a subscription's plan applies (past_due, unpaid: during the grace period).
PLAN_STATUSES = Subscription.PLAN_STATUSES


@dataclass(frozen=True)
class QuotaStatus:
    plan: Plan
    limit: int
    used: int
    window_start: datetime
    reset_at: datetime

    @property
    def remaining(self) -> int:
        return max(self.limit - self.used, 0)


def default_plan() -> Plan:
    return Plan.objects.get(is_default=True)


def plan_for(workspace: Workspace, at: datetime | None = None) -> Plan:
    """The plan in force now: read per request, so an upgrade applies at once, and a
    scheduled downgrade or the end of a grace period applies exactly on time."""
    subscription = (
        Subscription.objects.select_related("plan", "pending_plan")
        .filter(workspace=workspace, status__in=PLAN_STATUSES)
        .first()
    )
    plan = subscription.plan_at(at or timezone.now()) if subscription else None
    return plan or default_plan()


def quota_limit(*, workspace: Workspace, plan: Plan, at: datetime) -> int:
    override = (
        QuotaOverride.objects.filter(workspace=workspace)
        .filter(Q(until__isnull=True) | Q(until__gt=at))
        .order_by("-created_at")
        .values_list("daily_images", flat=True)
        .first()
    )
    if override is not None:
        return override
    if plan.is_default:
        # Operators can lower the free quota for a day of overload (generation's switches).
        from generation.admission import operator_switches

        temporary = operator_switches().free_daily_images
        if temporary is not None:
            return min(plan.daily_images, temporary)
    return plan.daily_images


def quota_status(*, workspace: Workspace, plan: Plan | None = None) -> QuotaStatus:
    plan = plan or plan_for(workspace)
    now = timezone.now()
    window_start = plan.window_start(now)
    used = (
        QuotaCounter.objects.filter(workspace=workspace, window_start=window_start)
        .values_list("used", flat=True)
        .first()
    )
    return QuotaStatus(
        plan=plan,
        limit=quota_limit(workspace=workspace, plan=plan, at=now),
        used=used or 0,
        window_start=window_start,
        reset_at=window_start + plan.window,
    )


def usage_history(*, workspace: Workspace, days: int = 30) -> list[QuotaCounter]:
    since = timezone.now() - timedelta(days=days)
    return list(
        QuotaCounter.objects.filter(workspace=workspace, window_start__gte=since).order_by(
            "-window_start"
        )
    )


@dataclass(frozen=True)
class BillingOverview:
    plan: Plan
    subscription: Subscription | None
    activating: bool
    plans: list[Plan]


def billing_overview(workspace: Workspace) -> BillingOverview:
    """What a billing page shows: the plan in force, the subscription behind it, whether a
    Checkout is waiting for Stripe's confirmation, and the plans one can subscribe to."""
    subscription = (
        Subscription.objects.select_related("plan", "pending_plan")
        .filter(workspace=workspace)
        .first()
    )
    return BillingOverview(
        plan=plan_for(workspace),
        subscription=subscription if subscription and subscription.stripe_subscription_id else None,
        activating=bool(subscription and subscription.checkout_session_id),
        plans=list(Plan.objects.all()),
    )
