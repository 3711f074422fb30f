from __future__ import annotations

from dataclasses import dataclass

from django.db import connection
from django.db.models import QuerySet

from accounts.models import Workspace
from generation.models import Image, Job
from generation.services import TURNS_SQL, fair_share_since


def jobs_for(workspace: Workspace) -> QuerySet[Job]:
    return Job.objects.filter(workspace=workspace).prefetch_related("images")


def images_for(workspace: Workspace) -> QuerySet[Image]:
    """The workspace's images; none while it is suspended (they come back on unsuspend)."""
    return Image.objects.filter(workspace=workspace, workspace__suspended_at__isnull=True)


@dataclass(frozen=True)
class QueuePlace:
    position: int  # 1: runs next
    images_ahead: int
    wait_seconds: float


# Queued jobs and images that run before a job, in the dispatch order of
# generation.services (TURNS_SQL). The last column is 0 when the job is no longer queued.
_AHEAD_SQL = f"""
    WITH {TURNS_SQL}, me AS (SELECT turn, created_at FROM queued WHERE id = %(job)s)
    SELECT COUNT(queued.id), COALESCE(SUM(queued.num_images), 0), (SELECT COUNT(*) FROM me)
    FROM me LEFT JOIN queued ON (queued.turn, queued.created_at) < (me.turn, me.created_at)
    GROUP BY me.turn
"""  # noqa: S608 (composed of constants)


def job_queue_place(job: Job) -> QueuePlace | None:
    """Where a queued job stands, and roughly when it starts. None once it is not queued."""
    from generation.admission import estimated_wait

    with connection.cursor() as cursor:
        cursor.execute(_AHEAD_SQL, {"job": job.pk, "since": fair_share_since()})
        row = cursor.fetchone()
    if row is None:
        return None
    jobs_ahead, images_ahead, _ = row
    return QueuePlace(jobs_ahead + 1, images_ahead, estimated_wait(images_ahead))
