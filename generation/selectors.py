from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from accounts.models import Workspace
from config.sql import column_list, model_row, model_rows
from generation.models import Image, Job, WebhookDelivery, WebhookEndpoint

# A job's place in the queue is the fair queue's to say; callers found it here before.
from generation.queue import QueuePlace as QueuePlace
from generation.queue import job_queue_place as job_queue_place

# Read on every submission that sends an Idempotency-Key (careful clients send one with each):
# written out, where the ORM compiled the same lookup for each request. The partial unique
# index one_job_per_idempotency_key finds the row.
_IDEMPOTENT_JOB_SQL = f"""
    SELECT {column_list(Job)} FROM {Job._meta.db_table}
    WHERE workspace_id = %(workspace)s AND idempotency_key = %(key)s
"""  # noqa: S608 (composed of constants: the model's table and columns)


def job_for_idempotency_key(workspace_id: Any, key: str) -> Job | None:
    """The workspace's job made under this Idempotency-Key, if any."""
    return model_row(Job, _IDEMPOTENT_JOB_SQL, {"workspace": workspace_id, "key": key})


# A job of the workspace, and its images: what clients poll while they wait. Written out, where
# the ORM compiled the job's query and its images' prefetch for every poll (tests hold the two
# to jobs_for's reading: tests/generation/test_job_output.py).
_WORKSPACE_JOB_SQL = f"""
    SELECT {column_list(Job)} FROM {Job._meta.db_table}
    WHERE id = %(job)s AND workspace_id = %(workspace)s
"""  # noqa: S608 (composed of constants: the model's table and columns)
_JOB_IMAGES_SQL = f"""
    SELECT {column_list(Image)} FROM {Image._meta.db_table}
    WHERE job_id = %(job)s ORDER BY index
"""  # noqa: S608 (composed of constants; Image's ordering is its job, then its index)


def job_with_images(workspace: Workspace, job_id: Any) -> Job | None:
    """The workspace's job with this id, its images loaded as jobs_for's prefetch leaves
    them; None when the workspace has no such job."""
    job = model_row(Job, _WORKSPACE_JOB_SQL, {"job": job_id, "workspace": workspace.pk})
    if job is not None:
        images_prefetched(job, model_rows(Image, _JOB_IMAGES_SQL, {"job": job.pk}))
    return job


def images_prefetched(job: Job, images: list[Image]) -> None:
    """Give `job` these images as its prefetched `images` (what prefetch_related leaves: an
    evaluated queryset), so that job.images.all() reads nothing more."""
    prefetched = Image.objects.none()
    prefetched._result_cache, prefetched._prefetch_done = images, True  # type: ignore[attr-defined]
    for image in images:
        image.job = job
    job._prefetched_objects_cache = {"images": prefetched}  # type: ignore[attr-defined]


def jobs_for(workspace: Workspace) -> QuerySet[Job]:
    return Job.objects.filter(workspace=workspace).prefetch_related("images")


# An image to serve: each is fetched about once, by its owner or through a signed URL; written
# out, where the ORM compiled the lookup and its join for every download.
_IMAGE_SQL = f"""
    SELECT {column_list(Image, "image")} FROM {Image._meta.db_table} AS image
    JOIN {Workspace._meta.db_table} AS workspace ON workspace.id = image.workspace_id
    WHERE image.id = %(image)s AND workspace.suspended_at IS NULL
      AND (%(workspace)s::uuid IS NULL OR image.workspace_id = %(workspace)s::uuid)
"""  # noqa: S608 (composed of constants: the models' tables and columns)


def image_to_serve(image_id: Any, workspace: Workspace | None = None) -> Image | None:
    """The image with this id, as images_for reads it: of `workspace` when given, and none
    while its workspace is suspended (it comes back on unsuspend)."""
    params = {"image": image_id, "workspace": workspace.pk if workspace else None}
    return model_row(Image, _IMAGE_SQL, params)


def images_for(workspace: Workspace) -> QuerySet[Image]:
    """The workspace's images; none while it is suspended (they come back on unsuspend)."""
    return Image.objects.filter(workspace=workspace, workspace__suspended_at__isnull=True)


def webhook_endpoints_for(workspace: Workspace) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.filter(workspace=workspace)


def webhook_deliveries_for(workspace: Workspace) -> QuerySet[WebhookDelivery]:
    """The workspace's deliveries (per-job webhooks' and its endpoints'), newest first."""
    return WebhookDelivery.objects.filter(workspace=workspace).prefetch_related("tries")
