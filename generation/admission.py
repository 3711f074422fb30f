"""The one admission service: every way of asking for images comes through here.

The native API, the OpenAI-compatible API and the web pages validate their input against
the plan (generation/api.py's serializers), then call `job_request_admit`. It applies, in
order, the checks that cost the least first, and refusals before the reservation write
nothing:

1. suspension (403 `workspace_suspended`),
2. the plan's per-minute rate, keyed by workspace (429 `rate_limit_exceeded`),
3. an Idempotency-Key replay returns its job, charging nothing (or 409 on another body),
4. the quota read: a request the window cannot hold is refused (429 `quota_exceeded`),
5. the content policy (422 `policy_refused`, with a suggested rewrite),
6. overload control: the lane's wait against the plan's patience (503 with Retry-After),
7. job_submit: the insert and the one conditional reservation, the authority under
   concurrency (a concurrent request may still take the rest: 429).

Errors are domain errors (config/errors.py); callers map them to HTTP or to sentences.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.utils.translation import gettext as _

from accounts.models import ApiKey, User, Workspace
from billing.limits import RateUsage, submit_rate_check
from billing.models import Plan
from billing.quotas import QuotaExceeded
from billing.selectors import QuotaStatus, quota_status
from config.errors import DomainError
from config.metrics import ADMISSIONS
from config.request_middleware import refusal_code_set
from generation.models import Job
from generation.overload import admission_check
from generation.policy import moderation_level, policy_check
from generation.refusals import refusal_record
from generation.selectors import QueuePlace, job_for_idempotency_key
from generation.services import job_submit, request_fingerprint


class WorkspaceSuspended(DomainError):
    code = "workspace_suspended"

    def __init__(self) -> None:
        super().__init__(_("This workspace is suspended."))


@dataclass(frozen=True)
class Admission:
    job: Job
    created: bool  # False: an Idempotency-Key replay, charged nothing
    quota: QuotaStatus | None  # the workspace's quota after this request, when known
    place: QueuePlace | None  # where a new job stands in the queue, when worked out
    rate: RateUsage  # the workspace's submissions this minute, this one included


@dataclass
class LimitsSeen:
    """The workspace's rate and quota as admission read them, filled in as it goes, so that a
    refusal's answer shows them in its limit headers instead of reading them again (a spent
    free tier's 429 is the day's most common answer)."""

    rate: RateUsage | None = None
    quota: QuotaStatus | None = None


def job_request_admit(
    *,
    workspace: Workspace,
    user: User | None,
    api_key: ApiKey | None,
    plan: Plan,
    params: dict[str, Any],
    idempotency_key: str | None = None,
    seen: LimitsSeen | None = None,
) -> Admission:
    """Admit a request for images (params validated against `plan`), or raise a DomainError.

    A refusal costs nothing: no job, no quota, no stored upload. Each outcome is counted
    (atelier_admissions_total, by code and plan), a refusal's code goes on the request's
    log line and is counted per minute for the operators' dashboard."""
    try:
        admission = _admit(
            workspace=workspace,
            user=user,
            api_key=api_key,
            plan=plan,
            params=params,
            idempotency_key=idempotency_key,
            seen=seen if seen is not None else LimitsSeen(),
        )
    except DomainError as exc:
        ADMISSIONS.labels("refused", exc.code, plan.slug).inc()
        refusal_code_set(exc.code)
        refusal_record(exc.code)
        raise
    except Exception:
        # A dependency away (answered 503 by the API's handler) or a bug (500).
        ADMISSIONS.labels("error", "", plan.slug).inc()
        raise
    outcome = "admitted" if admission.created else "replayed"
    ADMISSIONS.labels(outcome, "", plan.slug).inc()
    return admission


def _admit(
    *,
    workspace: Workspace,
    user: User | None,
    api_key: ApiKey | None,
    plan: Plan,
    params: dict[str, Any],
    idempotency_key: str | None,
    seen: LimitsSeen,
) -> Admission:
    if workspace.is_suspended:
        raise WorkspaceSuspended()
    # OpenAI's `moderation` ("auto", "low") becomes the job's level, as far as the plan allows.
    requested = params.pop("moderation", None)
    level = moderation_level(plan=plan, requested=requested)
    params = {**params, "moderation_level": level}
    rate = seen.rate = submit_rate_check(workspace=workspace, plan=plan)
    place = None
    replay = bool(
        idempotency_key and job_for_idempotency_key(workspace.pk, idempotency_key) is not None
    )
    if not replay:
        # A replay returns its job (or a 409) in job_submit; anything new passes these first.
        quota = seen.quota = quota_status(workspace=workspace, plan=plan)
        if params["num_images"] > quota.remaining:
            raise QuotaExceeded(
                limit=quota.limit, reset_at=quota.reset_at, allowance=quota.allowance
            )
        policy_check(workspace=workspace, user=user, prompt=params["prompt"], level=level)
        place = admission_check(
            workspace=workspace,
            plan=plan,
            images=params["num_images"],
            # What the waiting room keeps a slot for: this body, under this key if any.
            request=request_fingerprint({**params, "idempotency_key": idempotency_key})[:16],
        )
    submission = job_submit(
        workspace=workspace,
        user=user,
        api_key=api_key,
        plan=plan,
        model=settings.GENERATION_MODEL,
        params=params,
        idempotency_key=idempotency_key,
    )
    return Admission(
        job=submission.job,
        created=submission.created,
        quota=submission.quota,
        place=place if submission.created else None,
        rate=rate,
    )
