"""Reads for plans and quotas. Each is O(1) in the workspace's history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection
from django.utils import timezone

from accounts.models import Workspace
from billing.models import Plan, QuotaCounter, Subscription
from billing.switches import operator_switches

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


# The override in force at a moment: the newest one not yet expired.
OVERRIDE_SQL = """
    SELECT daily_images FROM billing_quotaoverride
    WHERE workspace_id = %(workspace)s AND (until IS NULL OR until > %(at)s)
    ORDER BY created_at DESC LIMIT 1
"""

# A window's usage and the limit in force, in one round trip.
_QUOTA_SQL = f"""
    SELECT (SELECT used FROM billing_quotacounter
            WHERE workspace_id = %(workspace)s AND window_start = %(window)s),
           COALESCE(({OVERRIDE_SQL}), %(plan_limit)s)
"""  # noqa: S608 (composed of constants)


def plan_limit(plan: Plan) -> int:
    """The plan's images per window, before any per-workspace override."""
    if plan.is_default:
        # Operators can lower the free quota for a day of overload.
        temporary = operator_switches().free_daily_images
        if temporary is not None:
            return min(plan.daily_images, temporary)
    return plan.daily_images


def quota_status(*, workspace: Workspace, plan: Plan | None = None) -> QuotaStatus:
    plan = plan or plan_for(workspace)
    now = timezone.now()
    window_start = plan.window_start(now)
    with connection.cursor() as cursor:
        cursor.execute(
            _QUOTA_SQL,
            {
                "workspace": workspace.pk,
                "window": window_start,
                "at": now,
                "plan_limit": plan_limit(plan),
            },
        )
        used, limit = cursor.fetchone()
    return QuotaStatus(
        plan=plan,
        limit=limit,
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
