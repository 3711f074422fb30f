"""Quota accounting: reserve on admission, capture on success, release on failure.

The counter row per (workspace, window) is changed only by conditional statements that
compute in the database (`used = used + n ... WHERE used + n <= limit`), so concurrent
submissions can never admit more than the limit. The ledger's
unique constraints make a retried task or a duplicated message unable to settle twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from billing.models import QuotaCounter, QuotaLedgerEntry
from billing.selectors import OVERRIDE_SQL
from config.durations import duration_text
from config.errors import DomainError


class JobRef(Protocol):
    """A generation job as quotas see it (billing sits below generation: no import)."""

    pk: Any
    workspace_id: Any


class QuotaExceeded(DomainError):
    code = "quota_exceeded"

    def __init__(self, *, limit: int, reset_at: datetime) -> None:
        wait = max(int((reset_at - timezone.now()).total_seconds()), 1)
        super().__init__(
            f"You have used all {limit} images of your quota. It resets at "
            f"{reset_at:%Y-%m-%d %H:%M} UTC (in {duration_text(wait)}). "
            "Upgrade your plan for a larger quota.",
            limit=limit,
            reset_at=reset_at,
            retry_after=wait,
        )
        self.limit = limit
        self.reset_at = reset_at


# One statement admits or refuses, under any concurrency never past the limit: the limit in
# force (the newest override, else the plan's), the window's counter created or raised only
# while `used + images <= limit` (ON CONFLICT locks the row and re-checks the condition on
# its latest version), and the job's reserve entry written only if the counter moved.
_RESERVE_SQL = f"""
    WITH quota AS (
        SELECT COALESCE(({OVERRIDE_SQL}), %(plan_limit)s) AS limit_images
    ), counted AS (
        INSERT INTO billing_quotacounter (workspace_id, window_start, used)
        SELECT %(workspace)s, %(window)s, %(images)s FROM quota
        WHERE %(images)s <= quota.limit_images
        ON CONFLICT (workspace_id, window_start) DO UPDATE
        SET used = billing_quotacounter.used + EXCLUDED.used
        WHERE billing_quotacounter.used + EXCLUDED.used <= (SELECT limit_images FROM quota)
        RETURNING used
    ), entry AS (
        INSERT INTO billing_quotaledgerentry
            (job_id, workspace_id, kind, images, window_start, created_at)
        SELECT %(job)s, %(workspace)s, 'reserve', %(images)s, %(window)s, %(at)s FROM counted
    )
    SELECT quota.limit_images, (SELECT used FROM counted) FROM quota
"""  # noqa: S608 (composed of constants)


@dataclass(frozen=True)
class Reservation:
    used: int  # the window's total, this job's images included
    limit: int


def quota_reserve(
    *, job: JobRef, images: int, plan_limit: int, window_start: datetime, reset_at: datetime
) -> Reservation:
    """Reserve `images` for `job` in its window, or raise QuotaExceeded and change nothing.

    `plan_limit` applies unless an override is in force. The job's row must exist in the
    same transaction (the ledger entry refers to it)."""
    with connection.cursor() as cursor:
        cursor.execute(
            _RESERVE_SQL,
            {
                "job": job.pk,
                "workspace": job.workspace_id,
                "images": images,
                "window": window_start,
                "at": timezone.now(),
                "plan_limit": plan_limit,
            },
        )
        limit, used = cursor.fetchone()
    if used is None:
        raise QuotaExceeded(limit=limit, reset_at=reset_at)
    return Reservation(used=used, limit=limit)


def _settle(*, job: JobRef, kind: str) -> QuotaLedgerEntry | None:
    reserve = QuotaLedgerEntry.objects.filter(
        job_id=job.pk, kind=QuotaLedgerEntry.Kind.RESERVE
    ).first()
    if reserve is None:
        return None
    try:
        with transaction.atomic():
            return QuotaLedgerEntry.objects.create(
                job_id=job.pk,
                workspace_id=reserve.workspace_id,
                kind=kind,
                images=reserve.images,
                window_start=reserve.window_start,
            )
    except IntegrityError:
        return None  # already captured or released


# Capture the reservations of several jobs at once; a job already captured or released is
# skipped by the ledger's unique constraints.
_CAPTURE_SQL = """
    INSERT INTO billing_quotaledgerentry
        (job_id, workspace_id, kind, images, window_start, created_at)
    SELECT job_id, workspace_id, 'capture', images, window_start, %(at)s
    FROM billing_quotaledgerentry
    WHERE job_id = ANY(%(jobs)s) AND kind = 'reserve'
    ON CONFLICT DO NOTHING
"""


def quotas_capture(*, job_ids: list[object]) -> int:
    """Make several jobs' reservations final in one statement. Returns how many were
    captured now (not those settled before)."""
    with connection.cursor() as cursor:
        cursor.execute(_CAPTURE_SQL, {"jobs": list(job_ids), "at": timezone.now()})
        return cursor.rowcount


def quota_capture(*, job: JobRef) -> bool:
    """Make a job's reservation final. False if it was already settled."""
    return quotas_capture(job_ids=[job.pk]) == 1


@transaction.atomic
def quota_release(*, job: JobRef) -> bool:
    """Give a job's reserved images back. False if it was already settled."""
    entry = _settle(job=job, kind=QuotaLedgerEntry.Kind.RELEASE)
    if entry is None:
        return False
    QuotaCounter.objects.filter(
        workspace_id=entry.workspace_id, window_start=entry.window_start
    ).update(used=F("used") - entry.images)
    return True


@transaction.atomic
def quota_refund(*, job: JobRef) -> int:
    """Give a succeeded (captured) job's images back to its window. Returns the images
    refunded: 0 if the job was never captured or was refunded before."""
    capture = QuotaLedgerEntry.objects.filter(
        job_id=job.pk, kind=QuotaLedgerEntry.Kind.CAPTURE
    ).first()
    if capture is None:
        return 0
    try:
        with transaction.atomic():
            QuotaLedgerEntry.objects.create(
                job_id=job.pk,
                workspace_id=capture.workspace_id,
                kind=QuotaLedgerEntry.Kind.REFUND,
                images=capture.images,
                window_start=capture.window_start,
            )
    except IntegrityError:
        return 0
    QuotaCounter.objects.filter(
        workspace_id=capture.workspace_id,
        window_start=capture.window_start,
        used__gte=capture.images,
    ).update(used=F("used") - capture.images)
    return capture.images
