from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Count, QuerySet, Sum
from django.utils import timezone

from accounts.models import Workspace
from generation.models import Image, Job


def jobs_for(workspace: Workspace) -> QuerySet[Job]:
    return Job.objects.filter(workspace=workspace).prefetch_related("images")


def images_for(workspace: Workspace) -> QuerySet[Image]:
    return Image.objects.filter(workspace=workspace)


@dataclass(frozen=True)
class QueuePlace:
    position: int  # 1: runs next
    images_ahead: int
    wait_seconds: float


# Queued images that run before a job: all of the lanes above its own, and those of its own
# lane that come first in fair order (see generation.services.fair_queue).
_AHEAD_SQL = """
    WITH served AS (
        SELECT workspace_id, COUNT(*) AS n FROM generation_job
        WHERE started_at >= %(since)s GROUP BY workspace_id
    ), queued AS (
        SELECT job.id, job.num_images, job.created_at,
               (COALESCE(served.n, 0) + ROW_NUMBER() OVER (
                   PARTITION BY job.workspace_id ORDER BY job.created_at
               ))::float / GREATEST(job.dispatch_weight, 1) AS turn
        FROM generation_job AS job LEFT JOIN served ON served.workspace_id = job.workspace_id
        WHERE job.status = 'queued' AND job.lane = %(lane)s
    ), me AS (SELECT turn, created_at FROM queued WHERE id = %(job)s)
    SELECT COUNT(*), COALESCE(SUM(num_images), 0) FROM queued, me
    WHERE (queued.turn, queued.created_at) < (me.turn, me.created_at)
"""


def job_queue_place(job: Job) -> QueuePlace | None:
    """Where a queued job stands, and roughly when it starts. None once it is not queued."""
    from generation.admission import LANES_AT_OR_ABOVE, estimated_wait

    above = [lane for lane in LANES_AT_OR_ABOVE[job.lane] if lane != job.lane]
    higher = Job.objects.filter(status=Job.Status.QUEUED, lane__in=above).aggregate(
        jobs=Count("id"), images=Sum("num_images")
    )
    with connection.cursor() as cursor:
        since = timezone.now() - timedelta(seconds=settings.FAIR_SHARE_WINDOW)
        cursor.execute(_AHEAD_SQL, {"lane": job.lane, "job": job.pk, "since": since})
        jobs_ahead, images_ahead = cursor.fetchone()
    if not Job.objects.filter(pk=job.pk, status=Job.Status.QUEUED).exists():
        return None
    jobs_ahead += higher["jobs"]
    images_ahead += higher["images"] or 0
    return QueuePlace(jobs_ahead + 1, images_ahead, estimated_wait(images_ahead))
