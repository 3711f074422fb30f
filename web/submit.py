"""Submitting from a page through the API's one admission path, and refusals in words.

The pages never validate or admit on their own: they hand the form's fields to
GenerationSubmitMixin.submit (suspension, rate limit, the plan's limits, policy, overload,
quota) and show what it raised.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.http import HttpRequest
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework import serializers

from billing.services import QuotaExceeded, duration_text
from config.api_errors import ApiError, _flatten_validation
from generation.api import GenerationInput, GenerationSubmitMixin
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


def refusal_from(error: ApiError) -> Refusal:
    extra = error.extra
    reset_at = parse_datetime(str(extra["reset_at"])) if extra.get("reset_at") else None
    retry = error.headers.get("Retry-After", "")
    reason = extra.get("reason")
    message = str(error.detail)
    if reason:  # a policy refusal's message repeats its suggestion; the page shows them apart
        message = f"This request was refused: {reason}"
    elif isinstance(error, QuotaExceeded):  # the page says when it resets on its own line
        message = f"You have used all {error.limit} images of your quota."
    return Refusal(
        code=error.error_code,
        message=message,
        suggestion=str(extra.get("suggestion") or ""),
        suggested_prompt=str(extra.get("suggested_prompt") or ""),
        reset_at=reset_at,
        retry_after=wait_text(int(retry)) if retry.isdigit() and not reset_at else "",
        upgrade=error.error_code in UPGRADE_HELPS,
    )


def wait_text(seconds: int) -> str:
    """A short wait in words: "45 s", "3 min", "5 h 12 min"."""
    return f"{seconds} s" if seconds < 60 else duration_text(seconds)


def field_errors(error: serializers.ValidationError) -> dict[str, str]:
    """The serializer's errors by field name ("" for errors of the whole form)."""
    errors: dict[str, str] = {}
    for field, message in _flatten_validation(error.detail):
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
    kind: str = Job.Kind.TEXT_TO_IMAGE,
    serializer_class: type[GenerationInput] = GenerationInput,
) -> Job:
    """Admit a job from a page exactly as the API would (raises ApiError or ValidationError)."""
    job, _created = GenerationSubmitMixin().submit(
        request, data, kind=kind, serializer_class=serializer_class
    )
    return job


def seconds_until(moment: datetime) -> int:
    return max(int((moment - timezone.now()).total_seconds()), 0)
