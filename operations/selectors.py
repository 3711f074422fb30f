"""What the operators' dashboard shows. Every query is an aggregate over indexed columns."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Count, OuterRef, Q
from django.utils import timezone

from billing.models import Lane, Plan, Subscription
from billing.selectors import default_plan
from generation.models import Image, Job


@dataclass(frozen=True)
class Dashboard:
    images_today_by_plan: list[tuple[str, int]]
    jobs_by_status: list[tuple[str, int]]
    queue_by_lane: list[tuple[str, int, int]]  # lane, queued, running
    failures_last_hour: int
    recent_failures: list[Job]


def operator_dashboard() -> Dashboard:
    now = timezone.now()
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    # Images made today, by the plan of the workspace's subscription (none: the default plan).
    per_plan = (
        Image.objects.filter(created_at__gte=day_start)
        .annotate(
            plan_id=Subscription.objects.filter(
                workspace=OuterRef("workspace_id"), status__in=Subscription.PLAN_STATUSES
            ).values("plan_id")[:1]
        )
        .values("plan_id")
        .annotate(n=Count("id"))
    )
    names = dict(Plan.objects.values_list("pk", "name"))
    default = default_plan()
    by_plan: dict[str, int] = {name: 0 for name in Plan.objects.values_list("name", flat=True)}
    for row in per_plan:
        name = names.get(row["plan_id"], default.name)
        by_plan[name] = by_plan.get(name, 0) + row["n"]
    statuses = dict(
        Job.objects.filter(Q(created_at__gte=day_start) | Q(status__in=Job.ACTIVE_STATUSES))
        .values_list("status")
        .annotate(n=Count("id"))
    )
    lanes = {
        (row["lane"], row["status"]): row["n"]
        for row in Job.objects.filter(status__in=Job.ACTIVE_STATUSES)
        .values("lane", "status")
        .annotate(n=Count("id"))
    }
    hour_ago = now - timedelta(hours=1)
    failures = Job.objects.filter(status=Job.Status.FAILED, finished_at__gte=hour_ago)
    return Dashboard(
        images_today_by_plan=sorted(by_plan.items()),
        jobs_by_status=[
            (str(label), statuses.get(value, 0)) for value, label in Job.Status.choices
        ],
        queue_by_lane=[
            (str(label), lanes.get((value, "queued"), 0), lanes.get((value, "running"), 0))
            for value, label in Lane.choices
        ],
        failures_last_hour=failures.count(),
        recent_failures=list(failures.select_related("workspace").order_by("-finished_at")[:5]),
    )
