"""Quota accounting: reserve on admission, capture on success, release on failure.

The free plan's images are a person's allowance, not a workspace's: every free workspace a
person owns draws on one counter per (person, window), so opening workspaces does not
multiply it. A workspace on a paid plan, or under an operator's override, draws on its own
counter per (workspace, window). Counters are changed only by conditional statements that
compute in the database (`used = used + n ... WHERE used + n <= limit`), so concurrent
submissions can never admit more than the limit. The reserve entry in the ledger names the
counters it raised, and settling gives back to those; the ledger's unique constraints make
a retried task or a duplicated message unable to settle twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from billing.models import AllowanceCounter, Plan, QuotaCounter, QuotaLedgerEntry
from billing.selectors import LIMIT_SQL, quota_params
from config.durations import duration_text
from config.errors import DomainError
from config.metrics import QUOTA_IMAGES


class JobRef(Protocol):
    """A generation job as quotas see it (billing sits below generation: no import)."""

    pk: Any
    workspace_id: Any


class QuotaExceeded(DomainError):
    code = "quota_exceeded"

    def __init__(self, *, limit: int, reset_at: datetime, allowance: bool = False) -> None:
        """`allowance`: the limit is the owner's free allowance, shared by their free
        workspaces (the refusal says so: this workspace alone may have made nothing)."""
        wait = max(int((reset_at - timezone.now()).total_seconds()), 1)
        shared = (
            _(
                "Free images are counted per person, across all the free workspaces of this "
                "workspace's owner."
            )
            + " "
            if allowance
            else ""
        )
        used_up = ngettext(
            "You have used all %(limit)d image of your quota. It resets at %(at)s UTC "
            "(in %(wait)s).",
            "You have used all %(limit)d images of your quota. It resets at %(at)s UTC "
            "(in %(wait)s).",
            limit,
        ) % {
            "limit": limit,
            "at": date_format(reset_at, "DATETIME_FORMAT"),
            "wait": duration_text(wait),
        }
        upgrade = _("Upgrade your plan for a larger quota.")
        super().__init__(
            f"{used_up} {shared}{upgrade}",
            limit=limit,
            reset_at=reset_at,
            retry_after=wait,
        )
        self.limit = limit
        self.reset_at = reset_at
        self.allowance = allowance


# One statement admits or refuses, under any concurrency never past the limit: the limit in
# force and whose counter it applies to (LIMIT_SQL), then the counter that limits raised
# only while `used + images <= limit` (ON CONFLICT locks the row and re-checks the condition
# on its latest version): the owner's allowance counter on the free plan, else the
# workspace's own. The workspace's counter always counts the images (its usage history); on
# the free plan it moves only if the allowance did, with no limit of its own. The job's
# reserve entry, naming the allowance drawn on, is written only if the counters moved.
# Rows are locked in one order, the person's before the workspace's, as settlements do.
_RESERVE_SQL = f"""
    WITH quota AS ({LIMIT_SQL}), allowance AS (
        INSERT INTO billing_allowancecounter (person_id, window_start, used)
        SELECT quota.person_id, %(window)s, %(images)s FROM quota
        WHERE quota.person_id IS NOT NULL AND %(images)s <= quota.limit_images
        ON CONFLICT (person_id, window_start) DO UPDATE
        SET used = billing_allowancecounter.used + EXCLUDED.used
        WHERE billing_allowancecounter.used + EXCLUDED.used <= (SELECT limit_images FROM quota)
        RETURNING used
    ), counted AS (
        INSERT INTO billing_quotacounter (workspace_id, window_start, used)
        SELECT %(workspace)s, %(window)s, %(images)s FROM quota
        WHERE CASE WHEN quota.person_id IS NULL THEN %(images)s <= quota.limit_images
                   ELSE EXISTS (SELECT FROM allowance) END
        ON CONFLICT (workspace_id, window_start) DO UPDATE
        SET used = billing_quotacounter.used + EXCLUDED.used
        WHERE (SELECT person_id FROM quota) IS NOT NULL
           OR billing_quotacounter.used + EXCLUDED.used <= (SELECT limit_images FROM quota)
        RETURNING used
    ), entry AS (
        INSERT INTO billing_quotaledgerentry
            (job_id, workspace_id, person_id, kind, images, window_start, created_at)
        SELECT %(job)s, %(workspace)s, quota.person_id, 'reserve', %(images)s, %(window)s,
               %(at)s
        FROM quota, counted
    )
    SELECT quota.limit_images,
           CASE WHEN quota.person_id IS NULL THEN (SELECT used FROM counted)
                ELSE (SELECT used FROM allowance) END,
           quota.person_id IS NOT NULL
    FROM quota
"""  # noqa: S608 (composed of constants)


@dataclass(frozen=True)
class Reservation:
    used: int  # the counter's total, this job's images included
    limit: int
    allowance: bool  # drawn on the owner's free allowance (else the workspace's own counter)


def quota_reserve(
    *, job: JobRef, images: int, plan: Plan, window_start: datetime, reset_at: datetime
) -> Reservation:
    """Reserve `images` for `job` in its window, or raise QuotaExceeded and change nothing.

    On the free plan the images come from the workspace owner's allowance, shared by every
    free workspace they own; on a paid plan, or under an override, from the workspace's own
    counter. The job's row must exist in the same transaction (the ledger entry refers to
    it)."""
    now = timezone.now()
    params = quota_params(workspace_id=job.workspace_id, plan=plan, at=now)
    with connection.cursor() as cursor:
        cursor.execute(
            _RESERVE_SQL,
            {**params, "job": job.pk, "images": images, "window": window_start},
        )
        limit, used, allowance = cursor.fetchone()
    if used is None:
        raise QuotaExceeded(limit=limit, reset_at=reset_at, allowance=allowance)
    QUOTA_IMAGES.labels("reserved").inc(images)
    return Reservation(used=used, limit=limit, allowance=allowance)


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
                person_id=reserve.person_id,
                kind=kind,
                images=reserve.images,
                window_start=reserve.window_start,
            )
    except IntegrityError:
        return None  # already captured or released


def _give_back(*, entry: QuotaLedgerEntry, floor: int = 0) -> None:
    """Lower the counters the job's reservation raised by its images: the person's allowance
    first (if it drew on one), then the workspace's, in the order reservations lock them.
    `floor`: a counter below it is left alone."""
    if entry.person_id is not None:
        AllowanceCounter.objects.filter(
            person_id=entry.person_id, window_start=entry.window_start, used__gte=floor
        ).update(used=F("used") - entry.images)
    QuotaCounter.objects.filter(
        workspace_id=entry.workspace_id, window_start=entry.window_start, used__gte=floor
    ).update(used=F("used") - entry.images)


# Capture the reservations of several jobs at once; a job already captured or released is
# skipped by the ledger's unique constraints.
_CAPTURE_SQL = """
    INSERT INTO billing_quotaledgerentry
        (job_id, workspace_id, person_id, kind, images, window_start, created_at)
    SELECT job_id, workspace_id, person_id, 'capture', images, window_start, %(at)s
    FROM billing_quotaledgerentry
    WHERE job_id = ANY(%(jobs)s) AND kind = 'reserve'
    ON CONFLICT DO NOTHING
    RETURNING images
"""


def quotas_capture(*, job_ids: list[object]) -> int:
    """Make several jobs' reservations final in one statement. Returns how many were
    captured now (not those settled before)."""
    with connection.cursor() as cursor:
        cursor.execute(_CAPTURE_SQL, {"jobs": list(job_ids), "at": timezone.now()})
        captured = [images for (images,) in cursor.fetchall()]
    QUOTA_IMAGES.labels("captured").inc(sum(captured))
    return len(captured)


def quota_capture(*, job: JobRef) -> bool:
    """Make a job's reservation final. False if it was already settled."""
    return quotas_capture(job_ids=[job.pk]) == 1


@transaction.atomic
def quota_release(*, job: JobRef) -> bool:
    """Give a job's reserved images back to the counters its reservation raised (the
    owner's allowance it drew on, whatever the workspace's plan or owner is now). False if
    it was already settled."""
    entry = _settle(job=job, kind=QuotaLedgerEntry.Kind.RELEASE)
    if entry is None:
        return False
    _give_back(entry=entry)
    QUOTA_IMAGES.labels("released").inc(entry.images)
    return True


@transaction.atomic
def quota_refund(*, job: JobRef) -> int:
    """Give a succeeded (captured) job's images back to its window's counters, those its
    reservation raised. Returns the images refunded: 0 if the job was never captured or was
    refunded before."""
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
                person_id=capture.person_id,
                kind=QuotaLedgerEntry.Kind.REFUND,
                images=capture.images,
                window_start=capture.window_start,
            )
    except IntegrityError:
        return 0
    _give_back(entry=capture, floor=capture.images)
    QUOTA_IMAGES.labels("refunded").inc(capture.images)
    return capture.images
