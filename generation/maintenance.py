"""Maintenance run by Celery beat: the sweeper (jobs whose worker stopped heartbeating, jobs
past their deadline) and retention (images past their plan's retention, uploaded photos)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from billing.quotas import quota_release
from config.metrics import JOBS_FINISHED
from generation.models import Image, Job, WebhookDelivery
from generation.notify import job_event, job_events_on_commit
from generation.queue import flows_held, queue_index_add, queue_index_check, queue_index_remove
from generation.services import job_enqueue_ticket, job_fail


@dataclass(frozen=True)
class SweepResult:
    requeued: int
    failed: int


def jobs_sweep(*, at: datetime | None = None) -> SweepResult:
    """Requeue jobs whose worker stopped heartbeating; fail (and refund) jobs retried too
    often or past their deadline. Run by Celery beat."""
    at = at or timezone.now()
    stale_before = at - timedelta(seconds=settings.JOB_HEARTBEAT_TIMEOUT)
    requeued = failed = 0
    stale = Job.objects.filter(status=Job.Status.RUNNING, heartbeat_at__lt=stale_before)
    fields = ("pk", "workspace", "attempts", "worker", "lane", "finish_tag", "queue_seq")
    for job in stale.only(*fields, "num_images"):
        if job.attempts >= settings.JOB_MAX_ATTEMPTS:
            failed += job_fail(
                job=job,
                worker=job.worker,
                code="worker_lost",
                message=f"The worker running this job stopped {job.attempts} times; giving up.",
            )
        elif _job_requeue(job=job):
            requeued += 1
    deadline = at - timedelta(seconds=settings.JOB_DEADLINE)
    for job in Job.objects.filter(status__in=Job.ACTIVE_STATUSES, created_at__lt=deadline):
        failed += _job_expire(job=job)
    queue_index_check()
    return SweepResult(requeued=requeued, failed=failed)


@transaction.atomic
def _job_requeue(*, job: Job) -> bool:
    # Its tags stay as they were stamped, so it goes back to the front of the queue.
    with flows_held([job.workspace_id]):
        requeued = Job.objects.filter(
            pk=job.pk, status=Job.Status.RUNNING, worker=job.worker
        ).update(
            status=Job.Status.QUEUED, worker="", started_at=None, heartbeat_at=None, progress=0.0
        )
    if requeued:
        queue_index_add([job])
        job_enqueue_ticket(job)
        job_events_on_commit([job_event(job.pk, "requeued", Job.Status.QUEUED, 0.0)])
    return requeued == 1


@transaction.atomic
def _job_expire(*, job: Job) -> bool:
    with flows_held([job.workspace_id]):
        expired = Job.objects.filter(pk=job.pk, status__in=Job.ACTIVE_STATUSES).update(
            status=Job.Status.FAILED,
            finished_at=timezone.now(),
            error_code="deadline_exceeded",
            error_message="The job did not finish in time; its images were given back.",
        )
    if expired:
        JOBS_FINISHED.labels(Job.Status.FAILED, "deadline_exceeded").inc()
        queue_index_remove([job])
        quota_release(job=job)
        job_events_on_commit([job_event(job.pk, "completed", Job.Status.FAILED, job.progress)])
    return expired == 1


def images_expire(*, at: datetime | None = None, chunk: int = 500) -> int:
    """Delete images (file and row) past the retention their plan gave them when made, and
    the uploaded photo of an edit once none of its images is left."""
    expired = Image.objects.filter(expires_at__lt=at or timezone.now())
    deleted = 0
    while batch := list(expired.values_list("pk", "file", "job_id")[:chunk]):
        for _, name, _ in batch:
            default_storage.delete(name)
        deleted += Image.objects.filter(pk__in=[pk for pk, _, _ in batch]).delete()[0]
        emptied = Job.objects.filter(pk__in={job_id for _, _, job_id in batch}, images=None)
        _source_photos_delete(emptied)
    return deleted


def source_photos_expire(*, at: datetime | None = None) -> int:
    """Delete the uploaded photos of edits that made no image (failed or cancelled) once
    SOURCE_PHOTO_RETENTION_DAYS have passed (an operator may retry them until then)."""
    before = (at or timezone.now()) - timedelta(days=settings.SOURCE_PHOTO_RETENTION_DAYS)
    unused = Job.objects.filter(
        status__in=(Job.Status.FAILED, Job.Status.CANCELLED),
        created_at__lt=before,
        source_image__gt="",
    )
    return _source_photos_delete(unused)


def _source_photos_delete(jobs: QuerySet[Job], chunk: int = 500) -> int:
    deleted = 0
    # An edit's mask goes with its photo.
    photos = jobs.exclude(source_image="").values_list("pk", "source_image", "mask_image")
    while batch := list(photos[:chunk]):
        for _, *names in batch:
            for name in filter(None, names):
                default_storage.delete(name)
        deleted += Job.objects.filter(pk__in=[pk for pk, *_ in batch]).update(
            source_image="", mask_image=""
        )
    return deleted


def webhook_deliveries_expire(*, at: datetime | None = None, chunk: int = 5000) -> int:
    """Delete finished webhook deliveries (and their attempts) older than
    WEBHOOK_DELIVERY_RETENTION_DAYS: their record is for debugging a receiver, not forever."""
    before = (at or timezone.now()) - timedelta(days=settings.WEBHOOK_DELIVERY_RETENTION_DAYS)
    old = WebhookDelivery.objects.filter(created_at__lt=before).exclude(
        status=WebhookDelivery.Status.PENDING
    )
    deleted = 0
    while batch := list(old.values_list("pk", flat=True)[:chunk]):
        deleted += (
            WebhookDelivery.objects.filter(pk__in=batch)
            .delete()[1]
            .get(WebhookDelivery._meta.label, 0)
        )
    return deleted
