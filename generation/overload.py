"""Overload control: wait estimates per lane, shedding with an honest Retry-After, a
waiting room for those told to come back, and the operators' switches.

Throughput is measured by the workers: an exponentially weighted average of seconds of
GPU time per image, and a set of live workers, both in Redis. A new job's wait is the images
that the fair queue (generation/queue.py) would run before it times that average, divided by
the live workers.

Each refused request books a slot in its lane's waiting room: the Retry-After it gets is
the slot's time, slots are spaced at the lane's service rate, and the workspace coming back
at a slot of its own is admitted ahead of newcomers. So waiting as told pays off, and
newcomers queue behind those who waited.
"""

from __future__ import annotations

import math
import time
import uuid

from django.conf import settings
from django.utils.translation import gettext as _

from accounts.models import Workspace
from billing.models import Lane, Plan
from billing.switches import operator_switches
from config.durations import wait_text
from config.errors import DomainError
from generation.queue import (
    SECONDS_PER_IMAGE_KEY,
    WORKERS_KEY,
    QueuePlace,
    ahead_of_new,
    estimated_wait,
    queue_length,
)
from generation.queue import redis_client as _redis

LANES_AT_OR_ABOVE = {
    Lane.PRIORITY: [Lane.PRIORITY],
    Lane.STANDARD: [Lane.PRIORITY, Lane.STANDARD],
    Lane.FREE: [Lane.PRIORITY, Lane.STANDARD, Lane.FREE],
}


class Overloaded(DomainError):
    code = "overloaded"

    def __init__(self, *, retry_after: int, message: str, code: str | None = None) -> None:
        super().__init__(message, code=code, retry_after=retry_after)


# Admission


def _room_key(lane: str) -> str:
    return f"atelier:waiting-room:{lane}:next"


def _slots_key(workspace: Workspace) -> str:
    return f"atelier:waiting-room:slots:{workspace.pk}"


# Use one of the workspace's booked slots that is due. KEYS: slots; ARGV: now, grace.
_USE_SLOT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[2]))
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]) + 1, 'LIMIT', 0, 1)
if due[1] then
    redis.call('ZREM', KEYS[1], due[1])
    return 1
end
return 0
"""

# Book the lane's next slot for one refused request of a workspace; a workspace holding
# `max` slots is given its latest one instead. KEYS: lane's next slot, workspace's slots;
# ARGV: earliest, spacing, now, grace, max, unique member.
_BOOK = """
local slots = redis.call('ZCARD', KEYS[2])
if slots >= tonumber(ARGV[5]) then
    return redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')[2]
end
local slot = math.max(tonumber(ARGV[1]), tonumber(redis.call('GET', KEYS[1]) or '0'))
redis.call('SET', KEYS[1], tostring(slot + tonumber(ARGV[2])))
redis.call('ZADD', KEYS[2], slot, ARGV[6])
redis.call('EXPIRE', KEYS[2], math.ceil(slot - tonumber(ARGV[3]) + tonumber(ARGV[4])))
return tostring(slot)
"""


def _use_due_slot(workspace: Workspace, now: float) -> bool:
    return bool(
        _redis().eval(_USE_SLOT, 1, _slots_key(workspace), now, settings.WAITING_ROOM_GRACE)
    )


def _book_slot(*, workspace: Workspace, lane: str, earliest: float, spacing: float) -> float:
    keys = [_room_key(lane), _slots_key(workspace)]
    arguments: list[str | float] = [
        earliest, spacing, time.time(), settings.WAITING_ROOM_GRACE,
        settings.WAITING_ROOM_MAX_SLOTS, uuid.uuid4().hex,
    ]  # fmt: skip
    return float(_redis().eval(_BOOK, 2, *keys, *arguments))


def admission_check(*, workspace: Workspace, plan: Plan, images: int) -> QueuePlace | None:
    """Admit the job, or raise Overloaded (503 with Retry-After). Refusals cost nothing.

    Returns where the admitted job will stand in the queue, when that was worked out."""
    switches = operator_switches()
    if plan.is_default and switches.free_tier_paused:
        raise Overloaded(
            retry_after=settings.FREE_TIER_PAUSED_RETRY_AFTER,
            code="free_tier_paused",
            message=_(
                "The free tier is paused while demand is high; paid plans are unaffected. "
                "Please try again later."
            ),
        )
    if plan.lane != Lane.PRIORITY and switches.max_queued_jobs is not None:
        queued = queue_length()
        if queued >= switches.max_queued_jobs:
            raise Overloaded(
                retry_after=max(math.ceil(estimated_wait(queued)), 1),
                message=_("The queue is full right now. Please try again later."),
            )

    now = time.time()
    pipe = _redis().pipeline(transaction=False)
    pipe.exists(_slots_key(workspace))
    pipe.get(_room_key(plan.lane))
    pipe.get(SECONDS_PER_IMAGE_KEY)
    pipe.zcount(WORKERS_KEY, now - settings.WORKER_ALIVE_TIMEOUT, "+inf")
    held, next_slot, per_image, workers = pipe.execute()
    if held and _use_due_slot(workspace, now):
        return None  # a refused request came back at its slot: it waited its turn

    per_image = float(per_image) if per_image is not None else settings.DEFAULT_SECONDS_PER_IMAGE
    rate = max(int(workers), 1) / per_image
    jobs_ahead, ahead = ahead_of_new(lane=plan.lane, workspace=workspace, images=images)
    wait = max(ahead / rate, float(next_slot or 0) - now)
    if wait <= plan.max_wait_seconds:
        return QueuePlace(jobs_ahead + 1, ahead, ahead / rate)
    spacing = images / rate
    slot = _book_slot(
        workspace=workspace,
        lane=plan.lane,
        earliest=now + wait - plan.max_wait_seconds,
        spacing=spacing,
    )
    raise _come_back(slot - now)


def _come_back(seconds: float) -> Overloaded:
    retry_after = max(math.ceil(seconds), 1)
    return Overloaded(
        retry_after=retry_after,
        message=_("We are over capacity right now. Your place is kept: try again in %(wait)s.")
        % {"wait": wait_text(retry_after)},
    )
