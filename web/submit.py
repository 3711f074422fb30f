"""Submitting from a page through the one admission service, and refusals in words.

The pages never admit on their own: they validate the form's fields with the API's own
serializers (the plan's limits) and hand them to job_request_admit (suspension, rate limit,
quota, policy, overload), then show the refusal it raised from its facts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from rest_framework import serializers

from billing.models import Plan
from billing.quotas import QuotaExceeded
from config.api_errors import flatten_validation
from config.durations import wait_text
from config.errors import DomainError
from generation.admission import job_request_admit
from generation.api import GenerationInput
from generation.models import Job

# Refusals that a larger plan would have avoided: the page links to the billing page.
UPGRADE_HELPS = ("quota_exceeded", "teams_need_paid_plan")


@dataclass(frozen=True)
class Refusal:
    """Why a submission was turned away, and what the person can do about it."""

    code: str
    message: str
    suggestion: str = ""
    suggested_prompt: str = ""
    reset_at: datetime | None = None
    retry_after: str = ""  # "3 min"
    upgrade: bool = False


def refusal_from(error: DomainError) -> Refusal:
    facts = error.facts
    reset_at = facts.get("reset_at")
    reason = facts.get("reason")
    message = error.message
    if reason:  # a policy refusal's message repeats its suggestion; the page shows them apart
        message = _("This request was refused: %(reason)s") % {"reason": reason}
    elif isinstance(error, QuotaExceeded):  # the page says when it resets on its own line
        message = ngettext(
            "You have used all %(limit)d image of your quota.",
            "You have used all %(limit)d images of your quota.",
            error.limit,
        ) % {"limit": error.limit}
    retry_after = error.retry_after
    return Refusal(
        code=error.code,
        message=message,
        suggestion=str(facts.get("suggestion") or ""),
        suggested_prompt=str(facts.get("suggested_prompt") or ""),
        reset_at=reset_at,
        retry_after=wait_text(retry_after) if retry_after and not reset_at else "",
        upgrade=error.code in UPGRADE_HELPS,
    )


def field_errors(error: serializers.ValidationError) -> dict[str, str]:
    """The serializer's errors by field name ("" for errors of the whole form)."""
    errors: dict[str, str] = {}
    for field, message in flatten_validation(error.detail):
        key = field or ""
        errors[key] = f"{errors[key]} {message}" if key in errors else message
    return errors


def form_fields(request: HttpRequest, names: list[str]) -> dict[str, Any]:
    """The submitted fields the serializer knows, leaving out blanks (the defaults apply)."""
    data: dict[str, Any] = {
        name: request.POST[name].strip() for name in names if request.POST.get(name, "").strip()
    }
    if "image" in request.FILES:
        data["image"] = request.FILES["image"]
    return data


def page_submit(
    request: HttpRequest,
    data: dict[str, Any],
    *,
    plan: Plan,
    kind: str = Job.Kind.TEXT_TO_IMAGE,
    serializer_class: type[GenerationInput] = GenerationInput,
) -> Job:
    """Admit a job from a page exactly as the API would (raises DomainError or
    ValidationError)."""
    serializer = serializer_class(data=data, context={"plan": plan})
    serializer.is_valid(raise_exception=True)
    return job_request_admit(
        workspace=request.workspace,
        user=request.user,
        api_key=None,
        plan=plan,
        params={"kind": kind, **serializer.validated_data},
    ).job


def seconds_until(moment: datetime) -> int:
    return max(int((moment - timezone.now()).total_seconds()), 0)
