"""Per-minute rate limits (django-ratelimit on the Redis cache) and the headers that tell a
client where it stands: the IETF draft's RateLimit-Policy / RateLimit for requests per
minute, and OpenAI-style X-RateLimit-*-Images for the image quota."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from django_ratelimit.core import get_usage
from rest_framework.request import Request

from billing.models import Plan
from billing.selectors import QuotaStatus
from config.api_errors import ApiError

SUBMIT_GROUP = "generation.submit"


class RateLimited(ApiError):
    def __init__(self, *, limit: int, retry_after: int) -> None:
        super().__init__(
            f"Rate limit of {limit} requests per minute reached. Retry in {retry_after} s.",
            code="rate_limit_exceeded",
            status_code=429,
            headers={"Retry-After": str(retry_after)},
        )


def submit_rate_usage(request: Request, plan: Plan, *, increment: bool) -> dict[str, Any]:
    workspace_key = str(request.workspace.pk)
    usage = get_usage(
        request,
        group=SUBMIT_GROUP,
        key=lambda group, req: workspace_key,
        rate=f"{plan.requests_per_minute}/m",
        increment=increment,
    )
    if usage is None:
        return {"count": 0, "limit": plan.requests_per_minute, "reset": 60}
    # django-ratelimit's window still counts at time_left == 0; it resets one second later.
    return {**usage, "reset": usage["time_left"] + 1}


def submit_rate_check(request: Request, plan: Plan) -> dict[str, Any]:
    """Count one submission; raise RateLimited (429 with Retry-After) past the plan's rate."""
    usage = submit_rate_usage(request, plan, increment=True)
    if usage["count"] > usage["limit"]:
        raise RateLimited(limit=usage["limit"], retry_after=usage["reset"])
    return usage


def _reset_text(seconds: int) -> str:
    hours, rest = divmod(max(seconds, 0), 3600)
    minutes, secs = divmod(rest, 60)
    return (f"{hours}h" if hours else "") + (f"{minutes}m" if hours or minutes else "") + f"{secs}s"


def limit_headers(*, usage: dict[str, Any], quota: QuotaStatus) -> dict[str, str]:
    remaining = max(usage["limit"] - usage["count"], 0)
    reset = max(int((quota.reset_at - timezone.now()).total_seconds()), 0)
    return {
        "RateLimit-Policy": f'"minute";q={usage["limit"]};w=60',
        "RateLimit": f'"minute";r={remaining};t={usage["reset"]}',
        "X-RateLimit-Limit-Images": str(quota.limit),
        "X-RateLimit-Remaining-Images": str(quota.remaining),
        "X-RateLimit-Reset-Images": _reset_text(reset),
    }
