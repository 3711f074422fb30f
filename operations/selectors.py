"""What the operators' dashboard and workspace page show.

Every query is bounded: the last 60 minutes by an indexed timestamp (images by created_at,
jobs by created_at or finished_at), or one workspace's rows by its indexes. The queue's depth,
wait and workers come from the same O(log n) figures admission and the status API use
(generation.queue), never from a COUNT over queued jobs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import redis
from django.core.cache import cache
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDate, TruncMinute
from django.utils import timezone

from accounts.models import ApiKey, Membership, Workspace
from billing.models import Lane, Plan, QuotaLedgerEntry, Subscription
from billing.selectors import QuotaStatus, default_plan, plan_for, quota_status
from generation.models import Image, Job
from generation.queue import (
    IMAGES_KEY,
    JOBS_KEY,
    lane_wait_estimate,
    live_workers,
    measured_seconds_per_image,
    redis_client,
)
from generation.refusals import refusals_by_minute

logger = logging.getLogger(__name__)

MINUTES = 60
DASHBOARD_SECONDS = 4  # the pages redraw every 5 s
_DASHBOARD_CACHE_KEY = "operations:dashboard:v1"


@dataclass(frozen=True)
class LaneNow:
    lane: str
    label: str
    images_ahead: int  # queued images that run before a new workspace's job in this lane
    wait_seconds: float  # that job's estimated wait, at the rate of the lane's live workers
    workers: int


@dataclass(frozen=True)
class Dashboard:
    start: datetime  # the first minute shown
    images_per_minute_by_plan: dict[str, list[int]]
    jobs_by_status: list[tuple[str, int]]  # jobs created in the hour
    queued: tuple[int, int] | None  # (jobs, images) queued in all lanes; None: Redis away
    lanes: list[LaneNow] | None  # None: Redis unreachable
    refusals_per_minute_by_code: dict[str, list[int]] | None
    failures_per_minute: list[int]
    recent_failures: list[Job]
    live_workers: int | None
    seconds_per_image: float | None  # the workers' measured mean; None before any batch
    images_by_worker: list[tuple[str, int]]  # images made in the hour by each worker

    @property
    def images_last_hour(self) -> int:
        return sum(sum(values) for values in self.images_per_minute_by_plan.values())

    @property
    def failures_last_hour(self) -> int:
        return sum(self.failures_per_minute)

    @property
    def refusals_last_hour(self) -> int | None:
        if self.refusals_per_minute_by_code is None:
            return None
        return sum(sum(values) for values in self.refusals_per_minute_by_code.values())

    @property
    def refusals_by_code(self) -> list[tuple[str, int]]:
        per_code = self.refusals_per_minute_by_code or {}
        return sorted(
            ((code, sum(values)) for code, values in per_code.items()), key=lambda r: -r[1]
        )

    @property
    def images_per_minute_now(self) -> float:
        return round(self.images_last_hour / MINUTES, 1)


def _slot(start: datetime, at: datetime) -> int:
    return int((at - start).total_seconds() // 60)


def _per_minute(rows: QuerySet[Any], start: datetime) -> list[int]:
    counts = [0] * MINUTES
    for row in rows:
        slot = _slot(start, row["minute"])
        if 0 <= slot < MINUTES:
            counts[slot] += row["n"]
    return counts


def operator_dashboard_cached() -> Dashboard:
    """The dashboard as every operator's page fetches it: computed at most once per
    DASHBOARD_SECONDS, however many operators watch."""
    dashboard = cache.get_or_set(_DASHBOARD_CACHE_KEY, operator_dashboard, DASHBOARD_SECONDS)
    return dashboard if isinstance(dashboard, Dashboard) else operator_dashboard()


def operator_dashboard(now: datetime | None = None) -> Dashboard:
    """The last 60 minutes, minute by minute, and the queue as it stands."""
    now = now or timezone.now()
    start = now.replace(second=0, microsecond=0) - timedelta(minutes=MINUTES - 1)
    names = dict(Plan.objects.values_list("pk", "name"))
    default = default_plan()
    by_plan: dict[str, list[int]] = {name: [0] * MINUTES for name in sorted(names.values())}
    # One join to the workspaces' subscriptions (one row each), grouped: no per-image lookup.
    images = (
        Image.objects.filter(created_at__gte=start)
        .annotate(minute=TruncMinute("created_at"))
        .values("minute", "workspace__subscription__plan_id", "workspace__subscription__status")
        .annotate(n=Count("id"))
        .order_by()
    )
    for row in images:
        slot = _slot(start, row["minute"])
        name = names.get(row["workspace__subscription__plan_id"], default.name)
        if row["workspace__subscription__status"] not in Subscription.PLAN_STATUSES:
            name = default.name  # no subscription, or one that ended: the default plan
        if 0 <= slot < MINUTES:
            by_plan[name][slot] += row["n"]
    statuses = dict(
        Job.objects.filter(created_at__gte=start)
        .values_list("status")
        .annotate(n=Count("id"))
        .order_by()
    )
    failed = Job.objects.filter(status=Job.Status.FAILED, finished_at__gte=start)
    failures = _per_minute(
        failed.annotate(minute=TruncMinute("finished_at"))
        .values("minute")
        .annotate(n=Count("id"))
        .order_by(),
        start,
    )
    by_worker = (
        Job.objects.filter(status=Job.Status.SUCCEEDED, finished_at__gte=start)
        .exclude(worker="")
        .values_list("worker")
        .annotate(made=Sum("num_images"))
        .order_by("-made", "worker")[:20]
    )
    lanes: list[LaneNow] | None
    refusals: dict[str, list[int]] | None
    workers: int | None
    per_image: float | None
    try:
        lanes = [
            LaneNow(
                lane=value,
                label=str(label),
                images_ahead=(estimate := lane_wait_estimate(value)).queued_images,
                wait_seconds=estimate.wait_seconds,
                workers=live_workers(value),
            )
            for value, label in Lane.choices
        ]
        minutes = refusals_by_minute(minutes=MINUTES, now=now.timestamp())
        codes = sorted({code for counts in minutes for code in counts})
        refusals = {code: [counts.get(code, 0) for counts in minutes] for code in codes}
        workers, per_image = live_workers(), measured_seconds_per_image()
        # The place index's sizes: O(1), whatever the depth (never a COUNT over jobs).
        pipe = redis_client().pipeline(transaction=False)
        pipe.zcard(JOBS_KEY)
        pipe.zcard(IMAGES_KEY)
        jobs, images = pipe.execute()
        queued: tuple[int, int] | None = (int(jobs), int(images))
    except redis.RedisError:
        logger.warning("Dashboard: Redis unreachable, queue figures left out")
        lanes = refusals = workers = per_image = queued = None
    return Dashboard(
        start=start,
        images_per_minute_by_plan=by_plan,
        jobs_by_status=[(str(label), statuses.get(key, 0)) for key, label in Job.Status.choices],
        queued=queued,
        lanes=lanes,
        refusals_per_minute_by_code=refusals,
        failures_per_minute=failures,
        recent_failures=list(failed.select_related("workspace").order_by("-finished_at")[:5]),
        live_workers=workers,
        seconds_per_image=per_image,
        images_by_worker=[(worker, int(n)) for worker, n in by_worker],
    )


@dataclass(frozen=True)
class WorkspaceOverview:
    workspace: Workspace
    plan: Plan
    subscription: Subscription | None
    quota: QuotaStatus
    memberships: list[Membership]
    keys: list[ApiKey]
    usage_days: list[date]  # the last 30 days, oldest first
    usage_per_day: list[int]  # images used (reserved less given back) each of those days
    recent_jobs: list[Job]


def workspace_overview(workspace: Workspace, *, days: int = 30) -> WorkspaceOverview:
    """What an operator needs on one workspace's page: people, keys, plan, usage, jobs."""
    today = timezone.now().date()
    first = today - timedelta(days=days - 1)
    per_day = dict.fromkeys((first + timedelta(days=n) for n in range(days)), 0)
    rows = (
        QuotaLedgerEntry.objects.filter(
            workspace=workspace,
            window_start__gte=timezone.now() - timedelta(days=days + 1),
        )
        .annotate(day=TruncDate("window_start"))
        .values("day")
        .annotate(
            taken=Sum("images", filter=Q(kind=QuotaLedgerEntry.Kind.RESERVE)),
            returned=Sum(
                "images",
                filter=Q(kind__in=[QuotaLedgerEntry.Kind.RELEASE, QuotaLedgerEntry.Kind.REFUND]),
            ),
        )
        .order_by()
    )
    for row in rows:
        if row["day"] in per_day:
            per_day[row["day"]] += (row["taken"] or 0) - (row["returned"] or 0)
    return WorkspaceOverview(
        workspace=workspace,
        plan=plan_for(workspace),
        subscription=Subscription.objects.filter(workspace=workspace)
        .select_related("plan", "pending_plan")
        .first(),
        quota=quota_status(workspace=workspace),
        memberships=list(
            workspace.memberships.select_related("user").order_by("role", "user__email")
        ),
        keys=list(
            ApiKey.objects.filter(workspace=workspace)
            .select_related("created_by")
            .order_by("revoked_at", "-created_at")[:50]
        ),
        usage_days=list(per_day),
        usage_per_day=list(per_day.values()),
        recent_jobs=list(Job.objects.filter(workspace=workspace).order_by("-created_at")[:10]),
    )
