"""Job state changes: submission, cancellation, progress, completion, failure, retry.

The fair queue's claim is generation/queue.py; the sweeper and retention are
generation/maintenance.py; the worker's loop around them is generation/worker.py.

Over 300 lines: every transition here keeps the queue's flows, its place index and the quota
in step with the job in one transaction, and they are kept together so that they read alike.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import ApiKey, User, Workspace
from billing.models import Plan
from billing.quotas import QuotaExceeded, quota_release, quota_reserve, quotas_capture
from billing.selectors import QuotaStatus, plan_for, retention_days_for
from config.errors import DomainError
from config.logs import current_request_id
from config.metrics import JOBS_FINISHED
from config.sql import model_insert
from generation.images import file_extension
from generation.models import Image, Job
from generation.notify import job_event, job_events_on_commit
from generation.queue import (
    flows_held,
    flows_wake,
    job_stamp,
    queue_index_add,
    queue_index_remove,
)
from generation.selectors import job_for_idempotency_key
from generation.tickets import ticket_ring

MAX_SEED = 2**32 - 1


class IdempotencyConflict(DomainError):
    code = "idempotency_key_reused"

    def __init__(self) -> None:
        super().__init__(
            _("This Idempotency-Key was already used with a different request body."),
            param="Idempotency-Key",
        )


@dataclass(frozen=True)
class Submission:
    job: Job
    created: bool  # False: an Idempotency-Key replay of an earlier job, charged nothing
    quota: QuotaStatus | None  # where the workspace stands after this job (None on a replay)


@dataclass(frozen=True)
class GeneratedImage:
    png: bytes  # the encoded image, in its job's output_format (the name predates JPEG, WebP)
    width: int
    height: int
    seed: int
    # Chosen before encoding: the watermark and the C2PA manifest carry it.
    id: uuid.UUID = field(default_factory=uuid.uuid4)


def request_fingerprint(params: dict[str, Any]) -> str:
    canonical = json.dumps(params, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _enqueue(job: Job) -> None:
    ticket_ring(job_id=job.id, lane=job.lane)


@transaction.atomic
def job_submit(
    *,
    workspace: Workspace,
    user: User | None,
    api_key: ApiKey | None,
    plan: Plan,
    model: str,
    params: dict[str, Any],
    idempotency_key: str | None = None,
) -> Submission:
    """Admit a job: insert it, reserve its images, enqueue it after commit.

    A repeated Idempotency-Key with the same parameters returns
    the first job and charges nothing; with other parameters it raises a 409.
    """
    fingerprint = request_fingerprint(params)
    if idempotency_key:
        existing = job_for_idempotency_key(workspace.pk, idempotency_key)
        if existing is not None:
            return Submission(_replay(existing, fingerprint), created=False, quota=None)

    fields = dict(params)
    fields.setdefault("moderation_level", plan.moderation_level)
    if fields.get("seed") is None:
        fields["seed"] = secrets.randbelow(MAX_SEED + 1)
    job = Job(
        workspace=workspace,
        user=user,
        api_key=api_key,
        model=model,
        lane=plan.lane,
        dispatch_weight=settings.LANE_WEIGHTS.get(plan.lane, 1),
        max_in_flight=plan.max_jobs_in_flight,
        idempotency_key=idempotency_key or None,
        request_hash=fingerprint,
        request_id=current_request_id(),
        **fields,
    )
    if idempotency_key:
        try:
            with transaction.atomic():
                job_stamp(job)
                model_insert(job)
        except IntegrityError:
            # A concurrent request with the same key got there first.
            existing = Job.objects.get(workspace=workspace, idempotency_key=idempotency_key)
            return Submission(_replay(existing, fingerprint), created=False, quota=None)
    else:
        job_stamp(job)  # its place in the fair queue; locks the workspace's flow until commit
        model_insert(job)

    window_start = plan.window_start(timezone.now())
    reset_at = window_start + plan.window
    try:
        reservation = quota_reserve(
            job=job,
            images=job.num_images,
            plan=plan,
            window_start=window_start,
            reset_at=reset_at,
        )
    except QuotaExceeded:
        # An upload stored with the row, which the refusal rolls back, goes too; a file the
        # job only refers to (an operator's retry of an edit) belongs to another job.
        if job.source_image and not isinstance(params.get("source_image"), str):
            job.source_image.delete(save=False)
        if job.mask_image and not isinstance(params.get("mask_image"), str):
            job.mask_image.delete(save=False)
        raise
    queue_index_add([job])  # after the last refusal: only a failed commit leaves it behind
    job_enqueue_ticket(job)
    quota = QuotaStatus(
        plan, reservation.limit, reservation.used, window_start, reset_at, reservation.allowance
    )
    return Submission(job, created=True, quota=quota)


def _replay(job: Job, fingerprint: str) -> Job:
    if job.request_hash != fingerprint:
        raise IdempotencyConflict()
    return job


@transaction.atomic
def job_cancel(*, job: Job) -> Job:
    """Cancel a queued or running job and give its images back at once.

    A worker running it sees the status at its next step and stops; if it finishes first,
    its conditional update to succeeded fails and the images are discarded.
    """
    with flows_held([job.workspace_id]):
        cancelled = Job.objects.filter(pk=job.pk, status__in=Job.ACTIVE_STATUSES).update(
            status=Job.Status.CANCELLED, finished_at=timezone.now()
        )
    job.refresh_from_db()
    if cancelled == 1:
        JOBS_FINISHED.labels(Job.Status.CANCELLED, "").inc()
        queue_index_remove([job])
        quota_release(job=job)
        transaction.on_commit(lambda: jobs_wake_waiting(workspace_ids=[job.workspace_id]))
        job_events_on_commit([job_event(job.pk, "completed", job.status, job.progress)])
        return job
    if job.status == Job.Status.CANCELLED:
        return job
    raise DomainError(
        _("The job is %(status)s and can no longer be cancelled.")
        % {"status": job.get_status_display()},
        code="job_not_cancellable",
    )


def jobs_cancel_for_workspace(*, workspace: Workspace) -> int:
    """Cancel every queued and running job of a workspace (a suspension), giving their
    images back; running ones stop at their next step. Returns the jobs cancelled."""
    cancelled = 0
    for job in Job.objects.filter(workspace=workspace, status__in=Job.ACTIVE_STATUSES):
        with contextlib.suppress(DomainError):  # it finished in the meantime
            cancelled += job_cancel(job=job).status == Job.Status.CANCELLED
    return cancelled


def jobs_of_suspended_cancel(*, jobs: list[Job]) -> list[Job]:
    """A claimed batch less the jobs of suspended workspaces, which are cancelled and
    refunded instead of run (a job admitted while its workspace was being suspended)."""
    suspended = set(
        Workspace.objects.filter(
            pk__in={job.workspace_id for job in jobs}, suspended_at__isnull=False
        ).values_list("pk", flat=True)
    )
    if not suspended:
        return jobs
    for job in jobs:
        if job.workspace_id in suspended:
            with contextlib.suppress(DomainError):
                job_cancel(job=job)
    return [job for job in jobs if job.workspace_id not in suspended]


def jobs_wake_waiting(*, workspace_ids: list[Any]) -> int:
    """Send a ticket for each of these workspaces that still has queued jobs.

    A job held back by its workspace's in-flight cap can see its ticket spent by a worker
    that found nothing it could take; when the workspace's running jobs finish, this
    wakes a worker for the next one (the ticket names the workspace's next job in fair order).
    """
    heads = flows_wake(workspace_ids)
    for head in heads:
        _enqueue(Job(pk=head.job_id, lane=head.lane or ""))
    return len(heads)


def job_progress(*, job_ids: list[Any], worker: str, progress: float) -> int:
    """Record progress and a heartbeat; returns how many of the jobs are still running."""
    running = Job.objects.filter(pk__in=job_ids, status=Job.Status.RUNNING, worker=worker).update(
        progress=progress, heartbeat_at=timezone.now()
    )
    if running:
        job_events_on_commit(
            [job_event(job_id, "progress", Job.Status.RUNNING, progress) for job_id in job_ids]
        )
    return running


def job_heartbeat(*, job_ids: list[Any], worker: str) -> int:
    return Job.objects.filter(pk__in=job_ids, status=Job.Status.RUNNING, worker=worker).update(
        heartbeat_at=timezone.now()
    )


def _image_name(job: Job, index: int) -> str:
    return f"images/{job.workspace_id}/{job.id}/{index}.{file_extension(job.output_format)}"


def job_complete(*, job: Job, worker: str, images: list[GeneratedImage]) -> bool:
    """Store a running job's images, mark it succeeded and capture its quota."""
    return bool(jobs_complete(worker=worker, results=[(job, images)]))


# Running jobs of a worker marked succeeded; the ids of those that were still its to finish.
_SUCCEED_SQL = """
    UPDATE generation_job SET status = 'succeeded', finished_at = %(at)s, progress = 1.0
    WHERE id = ANY(%(jobs)s) AND status = 'running' AND worker = %(worker)s
    RETURNING id
"""


def image_store(*, job: Job, index: int, data: bytes) -> str:
    """Write one image's file for a running job; returns its storage name. Never inside a
    transaction (no lock is held across I/O). A file left by an attempt that died before
    it committed is replaced."""
    name = _image_name(job, index)
    if default_storage.exists(name):
        default_storage.delete(name)
    return default_storage.save(name, ContentFile(data))


def jobs_complete(*, worker: str, results: list[tuple[Job, list[GeneratedImage]]]) -> set[Any]:
    """Settle a rendered batch: store each job's images, mark the jobs succeeded and capture
    their quota, in one transaction of a few statements whatever the batch's size. Returns
    the ids of the jobs settled; a job no longer this worker's to finish (cancelled, or
    requeued by the sweeper) is skipped.

    Files are written before the transaction (never hold a lock across I/O); those of
    skipped jobs are removed again.
    """
    stored = [
        (
            job,
            images,
            [image_store(job=job, index=n, data=image.png) for n, image in enumerate(images)],
        )
        for job, images in results
    ]
    return jobs_settle(worker=worker, results=stored)


def jobs_settle(
    *, worker: str, results: list[tuple[Job, list[GeneratedImage], list[str]]]
) -> set[Any]:
    """Settle jobs whose images are stored (`image_store`): mark them succeeded, add their
    images and capture their quota in one transaction; exactly once, by the conditional
    UPDATE. Returns the ids settled; the files of the others (cancelled or requeued
    meanwhile) are removed."""
    names = {job.pk: files for job, _, files in results}
    now = timezone.now()
    workspaces = {job.workspace_id for job, _, _ in results}
    retention = {
        workspace_id: timedelta(days=days)
        for workspace_id, days in retention_days_for(workspaces, at=now).items()
    }
    with transaction.atomic():
        with flows_held(workspaces), connection.cursor() as cursor:
            cursor.execute(_SUCCEED_SQL, {"jobs": list(names), "worker": worker, "at": now})
            finished = {row[0] for row in cursor.fetchall()}
        Image.objects.bulk_create(
            Image(
                id=image.id,
                job=job,
                workspace_id=job.workspace_id,
                index=index,
                file=name,
                width=image.width,
                height=image.height,
                seed=image.seed,
                expires_at=now + retention[job.workspace_id],
            )
            for job, images, files in results
            if job.pk in finished
            for index, (name, image) in enumerate(zip(files, images, strict=True))
        )
        quotas_capture(job_ids=list(finished))
        job_events_on_commit(
            [job_event(job_id, "completed", Job.Status.SUCCEEDED, 1.0) for job_id in finished]
        )
    JOBS_FINISHED.labels(Job.Status.SUCCEEDED, "").inc(len(finished))
    for job_id, files in names.items():
        if job_id not in finished:
            for name in files:
                default_storage.delete(name)
    return finished


@transaction.atomic
def job_fail(*, job: Job, worker: str, code: str, message: str) -> bool:
    """Mark a running job failed and give its images back."""
    with flows_held([job.workspace_id]):
        failed = Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING, worker=worker).update(
            status=Job.Status.FAILED,
            finished_at=timezone.now(),
            error_code=code,
            error_message=message[:2000],
        )
    if failed == 1:
        JOBS_FINISHED.labels(Job.Status.FAILED, code).inc()
        quota_release(job=job)
        job_events_on_commit([job_event(job.pk, "completed", Job.Status.FAILED, job.progress)])
    return failed == 1


def job_enqueue_ticket(job: Job) -> None:
    transaction.on_commit(lambda: _enqueue(job))


def image_delete(*, image: Image) -> None:
    """Delete an image, row and file. Its quota stays spent: the image was made."""
    name = image.file.name or ""
    image.delete()
    transaction.on_commit(lambda: default_storage.delete(name))


RETRY_FIELDS = (
    "kind", "prompt", "negative_prompt", "width", "height", "steps", "guidance", "seed",
    "num_images", "strength", "source_image", "mask_image", "output_format", "output_compression",
)  # fmt: skip


def job_retry(*, job: Job) -> Job:
    """Submit a failed or cancelled job again as a new job with the same parameters and
    seed, under the workspace's plan now (its quota is reserved as for any job)."""
    if job.status not in (Job.Status.FAILED, Job.Status.CANCELLED):
        raise DomainError(
            _("The job is %(status)s; only failed or cancelled jobs can be retried.")
            % {"status": job.get_status_display()},
            code="job_not_retryable",
        )
    params = {field: getattr(job, field) for field in RETRY_FIELDS}
    params["source_image"] = job.source_image.name or ""
    params["mask_image"] = job.mask_image.name or ""
    return job_submit(
        workspace=job.workspace,
        user=job.user,
        api_key=None,
        plan=plan_for(job.workspace),
        model=job.model,
        params=params,
    ).job
