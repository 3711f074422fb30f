"""Per-minute rate limits (django-ratelimit on the Redis cache) and the headers that tell a
client where it stands: the IETF draft's RateLimit-Policy / RateLimit for requests per
minute, and OpenAI-style X-RateLimit-*-Images for the image quota."""

from __future__ import annotations

from dataclasses import dataclass

from django.utils import timezone
from django.utils.translation import ngettext
from django_ratelimit.core import get_usage

from accounts.models import Workspace
from billing.models import Plan
from billing.selectors import QuotaStatus
from config.durations import compact_duration, wait_text
from config.errors import DomainError

SUBMIT_GROUP = "generation.submit"


@dataclass(frozen=True)
class RateUsage:
    """A workspace's submissions in the current minute."""

    count: int
    limit: int
    reset: int  # seconds until the window starts again

    @property
    def remaining(self) -> int:
        return max(self.limit - self.count, 0)


class RateLimited(DomainError):
    code = "rate_limit_exceeded"

    def __init__(self, *, limit: int, retry_after: int) -> None:
        super().__init__(
            ngettext(
                "Rate limit of %(limit)d request per minute reached. Retry in %(wait)s.",
                "Rate limit of %(limit)d requests per minute reached. Retry in %(wait)s.",
                limit,
            )
            % {"limit": limit, "wait": wait_text(retry_after)},
            limit=limit,
            retry_after=retry_after,
        )


def submit_rate_usage(*, workspace: Workspace, plan: Plan, increment: bool) -> RateUsage:
    """The workspace's submissions this minute (counting one more when `increment`)."""
    workspace_key = str(workspace.pk)
    usage = get_usage(
        None,  # keyed by workspace alone: django-ratelimit needs no request for that
        group=SUBMIT_GROUP,
        key=lambda group, request: workspace_key,
        rate=f"{plan.requests_per_minute}/m",
        increment=increment,
    )
    if usage is None:
        return RateUsage(count=0, limit=plan.requests_per_minute, reset=60)
    # django-ratelimit's window still counts at time_left == 0; it resets one second later.
    return RateUsage(count=usage["count"], limit=usage["limit"], reset=usage["time_left"] + 1)


def submit_rate_check(*, workspace: Workspace, plan: Plan) -> RateUsage:
    """Count one submission; raise RateLimited (429 with Retry-After) past the plan's rate."""
    usage = submit_rate_usage(workspace=workspace, plan=plan, increment=True)
    if usage.count > usage.limit:
        raise RateLimited(limit=usage.limit, retry_after=usage.reset)
    return usage


def limit_headers(*, usage: RateUsage, quota: QuotaStatus) -> dict[str, str]:
    reset = max(int((quota.reset_at - timezone.now()).total_seconds()), 0)
    return {
        "RateLimit-Policy": f'"minute";q={usage.limit};w=60',
        "RateLimit": f'"minute";r={usage.remaining};t={usage.reset}',
        "X-RateLimit-Limit-Images": str(quota.limit),
        "X-RateLimit-Remaining-Images": str(quota.remaining),
        "X-RateLimit-Reset-Images": compact_duration(reset),
    }
