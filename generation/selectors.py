from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.db.models import QuerySet
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


# Queued jobs and images that run before a job: all of the lanes above its own, and those of
# its own lane that come first in fair order (see generation.services.fair_queue). The last
# column is 0 when the job is no longer queued.
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
    ), me AS (SELECT turn, created_at FROM queued WHERE id = %(job)s),
    above AS (
        SELECT COUNT(*) AS jobs, COALESCE(SUM(num_images), 0) AS images FROM generation_job
        WHERE status = 'queued' AND lane = ANY(%(above)s)
    )
    SELECT COUNT(queued.id) + above.jobs, COALESCE(SUM(queued.num_images), 0) + above.images,
           (SELECT COUNT(*) FROM me)
    FROM above
    LEFT JOIN me ON TRUE
    LEFT JOIN queued ON (queued.turn, queued.created_at) < (me.turn, me.created_at)
    GROUP BY above.jobs, above.images
"""


def job_queue_place(job: Job) -> QueuePlace | None:
    """Where a queued job stands, and roughly when it starts. None once it is not queued."""
    from generation.admission import LANES_AT_OR_ABOVE, estimated_wait

    above = [str(lane) for lane in LANES_AT_OR_ABOVE[job.lane] if lane != job.lane]
    since = timezone.now() - timedelta(seconds=settings.FAIR_SHARE_WINDOW)
    with connection.cursor() as cursor:
        cursor.execute(
            _AHEAD_SQL, {"lane": job.lane, "job": job.pk, "since": since, "above": above}
        )
        jobs_ahead, images_ahead, queued = cursor.fetchone()
    if not queued:
        return None
    return QueuePlace(jobs_ahead + 1, images_ahead, estimated_wait(images_ahead))
