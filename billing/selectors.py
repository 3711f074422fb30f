"""Reads for plans and quotas. Each is O(1) in the workspace's history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Q
from django.utils import timezone

from accounts.models import Workspace
from billing.models import Plan, QuotaCounter, QuotaOverride, Subscription

# Statuses in which a subscription's plan applies (past_due: during the grace period).
PLAN_STATUSES = (
    Subscription.Status.ACTIVE,
    Subscription.Status.TRIALING,
    Subscription.Status.PAST_DUE,
)


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


def plan_for(workspace: Workspace) -> Plan:
    subscription = (
        Subscription.objects.select_related("plan")
        .filter(workspace=workspace, status__in=PLAN_STATUSES)
        .first()
    )
    return subscription.plan if subscription else default_plan()


def quota_limit(*, workspace: Workspace, plan: Plan, at: datetime) -> int:
    override = (
        QuotaOverride.objects.filter(workspace=workspace)
        .filter(Q(until__isnull=True) | Q(until__gt=at))
        .order_by("-created_at")
        .values_list("daily_images", flat=True)
        .first()
    )
    return plan.daily_images if override is None else override


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
