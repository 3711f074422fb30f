"""Quota accounting: reserve on admission, capture on success, release on failure.

The counter row per (workspace, window) is changed only by conditional UPDATEs with F()
expressions, so concurrent submissions can never admit more than the limit. The ledger's
unique constraints make a retried task or a duplicated message unable to settle twice.
"""

from __future__ import annotations

from datetime import datetime

from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from billing.models import QuotaCounter, QuotaLedgerEntry
from config.api_errors import ApiError


class QuotaExceeded(ApiError):
    def __init__(self, *, limit: int, reset_at: datetime) -> None:
        wait = max(int((reset_at - timezone.now()).total_seconds()), 1)
        super().__init__(
            f"You have used all {limit} images of your quota. It resets at "
            f"{reset_at:%Y-%m-%d %H:%M} UTC (in {duration_text(wait)}). "
            "Upgrade your plan for a larger quota.",
            code="quota_exceeded",
            status_code=429,
            headers={"Retry-After": str(wait)},
            extra={"reset_at": reset_at.isoformat()},
        )
        self.limit = limit
        self.reset_at = reset_at


def duration_text(seconds: int) -> str:
    """A wait as a person reads it: "5 h 12 min", "3 min"."""
    hours, rest = divmod(seconds, 3600)
    minutes = rest // 60
    if hours:
        return f"{hours} h {minutes} min"
    return f"{max(minutes, 1)} min"


# One conditional UPDATE admits or refuses: never more than the limit, under any concurrency.
_COUNTER_ADD_SQL = """
    UPDATE billing_quotacounter SET used = used + %(images)s
    WHERE workspace_id = %(workspace)s AND window_start = %(window)s
      AND used + %(images)s <= %(limit)s
    RETURNING used
"""


def _counter_add(
    *, workspace_id: object, window_start: datetime, images: int, limit: int
) -> int | None:
    """The window's new total, or None if `images` more would pass the limit."""
    with connection.cursor() as cursor:
        cursor.execute(
            _COUNTER_ADD_SQL,
            {"images": images, "workspace": workspace_id, "window": window_start, "limit": limit},
        )
        row = cursor.fetchone()
    return None if row is None else row[0]


@transaction.atomic(savepoint=False)
def quota_reserve(
    *, job: object, images: int, limit: int, window_start: datetime, reset_at: datetime
) -> int:
    """Reserve `images` for `job` in its window and return the window's new total, or raise
    QuotaExceeded and change nothing."""
    workspace_id = job.workspace_id  # type: ignore[attr-defined]
    if images > limit:
        raise QuotaExceeded(limit=limit, reset_at=reset_at)
    used = _counter_add(
        workspace_id=workspace_id, window_start=window_start, images=images, limit=limit
    )
    if used is None:
        # First job of the window: create the row (racing creators are ignored), retry once.
        QuotaCounter.objects.bulk_create(
            [QuotaCounter(workspace_id=workspace_id, window_start=window_start, used=0)],
            ignore_conflicts=True,
        )
        used = _counter_add(
            workspace_id=workspace_id, window_start=window_start, images=images, limit=limit
        )
        if used is None:
            raise QuotaExceeded(limit=limit, reset_at=reset_at)
    QuotaLedgerEntry.objects.create(
        job=job,
        workspace_id=workspace_id,
        kind=QuotaLedgerEntry.Kind.RESERVE,
        images=images,
        window_start=window_start,
    )
    return used


def _settle(*, job: object, kind: str) -> QuotaLedgerEntry | None:
    reserve = QuotaLedgerEntry.objects.filter(job=job, kind=QuotaLedgerEntry.Kind.RESERVE).first()
    if reserve is None:
        return None
    try:
        with transaction.atomic():
            return QuotaLedgerEntry.objects.create(
                job=job,
                workspace_id=reserve.workspace_id,
                kind=kind,
                images=reserve.images,
                window_start=reserve.window_start,
            )
    except IntegrityError:
        return None  # already captured or released


@transaction.atomic
def quota_capture(*, job: object) -> bool:
    """Make a job's reservation final. False if it was already settled."""
    return _settle(job=job, kind=QuotaLedgerEntry.Kind.CAPTURE) is not None


@transaction.atomic
def quota_release(*, job: object) -> bool:
    """Give a job's reserved images back. False if it was already settled."""
    entry = _settle(job=job, kind=QuotaLedgerEntry.Kind.RELEASE)
    if entry is None:
        return False
    QuotaCounter.objects.filter(
        workspace_id=entry.workspace_id, window_start=entry.window_start
    ).update(used=F("used") - entry.images)
    return True


@transaction.atomic
def quota_refund(*, job: object) -> int:
    """Give a succeeded (captured) job's images back to its window. Returns the images
    refunded: 0 if the job was never captured or was refunded before."""
    capture = QuotaLedgerEntry.objects.filter(job=job, kind=QuotaLedgerEntry.Kind.CAPTURE).first()
    if capture is None:
        return 0
    try:
        with transaction.atomic():
            QuotaLedgerEntry.objects.create(
                job=job,
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
