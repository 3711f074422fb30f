"""Writes for jobs: submission, cancellation, and the worker's claim / complete / fail."""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any

from celery import current_app
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import ApiKey, User, Workspace
from billing.models import Plan
from billing.selectors import quota_status
from billing.services import quota_capture, quota_release, quota_reserve
from config.api_errors import ApiError
from generation.models import Image, Job

MAX_SEED = 2**32 - 1


class IdempotencyConflict(ApiError):
    def __init__(self) -> None:
        super().__init__(
            "This Idempotency-Key was already used with a different request body.",
            code="idempotency_key_reused",
            status_code=409,
            param="Idempotency-Key",
        )


@dataclass(frozen=True)
class GeneratedImage:
    png: bytes
    width: int
    height: int
    seed: int


def request_fingerprint(params: dict[str, Any]) -> str:
    canonical = json.dumps(params, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _enqueue(job: Job) -> None:
    current_app.send_task("generation.run_job", args=[str(job.id)], queue=f"gpu.{job.lane}")


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
) -> tuple[Job, bool]:
    """Admit a job: insert it, reserve its images, enqueue it after commit.

    Returns (job, created). A repeated Idempotency-Key with the same parameters returns
    the first job and charges nothing; with other parameters it raises a 409.
    """
    fingerprint = request_fingerprint(params)
    if idempotency_key:
        existing = Job.objects.filter(workspace=workspace, idempotency_key=idempotency_key).first()
        if existing is not None:
            return _replay(existing, fingerprint), False

    fields = dict(params)
    if fields.get("seed") is None:
        fields["seed"] = secrets.randbelow(MAX_SEED + 1)
    job = Job(
        workspace=workspace,
        user=user,
        api_key=api_key,
        model=model,
        lane=plan.lane,
        idempotency_key=idempotency_key or None,
        request_hash=fingerprint,
        **fields,
    )
    try:
        with transaction.atomic():
            job.save(force_insert=True)
    except IntegrityError:
        # A concurrent request with the same key got there first.
        existing = Job.objects.get(workspace=workspace, idempotency_key=idempotency_key)
        return _replay(existing, fingerprint), False

    status = quota_status(workspace=workspace, plan=plan)
    quota_reserve(
        job=job,
        images=job.num_images,
        limit=status.limit,
        window_start=status.window_start,
        reset_at=status.reset_at,
    )
    transaction.on_commit(lambda: _enqueue(job))
    return job, True


def _replay(job: Job, fingerprint: str) -> Job:
    if job.request_hash != fingerprint:
        raise IdempotencyConflict()
    return job


@transaction.atomic
def job_cancel(*, job: Job) -> Job:
    """Cancel a queued job and give its images back."""
    cancelled = Job.objects.filter(pk=job.pk, status=Job.Status.QUEUED).update(
        status=Job.Status.CANCELLED, finished_at=timezone.now()
    )
    job.refresh_from_db()
    if cancelled == 1:
        quota_release(job=job)
        return job
    if job.status == Job.Status.CANCELLED:
        return job
    raise ApiError(
        f"The job is {job.status} and can no longer be cancelled.",
        code="job_not_cancellable",
        status_code=409,
    )


def job_claim(*, job_id: str, worker: str) -> Job | None:
    """Move a queued job to running for `worker`. None if another worker got it first."""
    now = timezone.now()
    claimed = Job.objects.filter(pk=job_id, status=Job.Status.QUEUED).update(
        status=Job.Status.RUNNING,
        started_at=now,
        heartbeat_at=now,
        worker=worker,
        attempts=F("attempts") + 1,
    )
    if claimed != 1:
        return None
    return Job.objects.get(pk=job_id)


def _image_name(job: Job, index: int) -> str:
    return f"images/{job.workspace_id}/{job.id}/{index}.png"


def job_complete(*, job: Job, worker: str, images: list[GeneratedImage]) -> bool:
    """Store a running job's images, mark it succeeded and capture its quota.

    Files are written before the transaction (never hold a lock across I/O); if the job
    is no longer this worker's to finish, they are removed again.
    """
    names = []
    for index, image in enumerate(images):
        name = _image_name(job, index)
        if default_storage.exists(name):
            default_storage.delete(name)  # left by an attempt that died before committing
        names.append(default_storage.save(name, ContentFile(image.png)))
    with transaction.atomic():
        finished = Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING, worker=worker).update(
            status=Job.Status.SUCCEEDED, finished_at=timezone.now(), progress=1.0
        )
        if finished == 1:
            Image.objects.bulk_create(
                Image(
                    job=job,
                    workspace_id=job.workspace_id,
                    index=index,
                    file=name,
                    width=image.width,
                    height=image.height,
                    seed=image.seed,
                )
                for index, (name, image) in enumerate(zip(names, images, strict=True))
            )
            quota_capture(job=job)
    if finished != 1:
        for name in names:
            default_storage.delete(name)
        return False
    return True


@transaction.atomic
def job_fail(*, job: Job, worker: str, code: str, message: str) -> bool:
    """Mark a running job failed and give its images back."""
    failed = Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING, worker=worker).update(
        status=Job.Status.FAILED,
        finished_at=timezone.now(),
        error_code=code,
        error_message=message[:2000],
    )
    if failed == 1:
        quota_release(job=job)
    return failed == 1
