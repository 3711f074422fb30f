"""Overload control: wait estimates per lane, shedding with an honest Retry-After, a
waiting room for those told to come back, and the operators' switches.

Throughput is measured by the workers: exponentially weighted averages of seconds of GPU
time per image and per batch, and the live workers of each lane, in Redis. A new job's wait
is the later of two: the images that the fair queue (generation/queue.py) would run before
it, at the rate of the live workers that serve its lane (a worker kept for the priority
lane makes no free images); and its workspace's own queued jobs, which the plan's in-flight
cap runs a few at a time, about a batch each (a free workspace's fifth queued job waits for
four batches, however many workers there are).

Each refused request books a slot in its lane's waiting room: the Retry-After it gets is
the slot's time, slots are spaced at the lane's service rate, and the same request coming
back at its slot is admitted ahead of newcomers (another request of its workspace that
arrives first does not take it). So waiting as told pays off, and newcomers queue behind
those who waited. A slot further ahead than WAITING_ROOM_HORIZON is not booked: the request
is told when to try again, with no place kept. A booked slot holds the lane whether or not
its client comes back, so this bounds what clients who gave up can hold: without it, a
flood of refusals books the lane hours ahead, and a newcomer to an emptied queue is still
told to wait behind them.
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
    SECONDS_PER_BATCH_KEY,
    SECONDS_PER_IMAGE_KEY,
    NewJobAhead,
    QueuePlace,
    capped_wait,
    estimated_wait,
    lane_workers_key,
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


# Use the workspace's first due slot that was booked for this request (its members start
# with the request's fingerprint). KEYS: slots; ARGV: now, grace, fingerprint.
_USE_SLOT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[2]))
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]) + 1)
for _, member in ipairs(due) do
    if string.sub(member, 1, #ARGV[3]) == ARGV[3] then
        redis.call('ZREM', KEYS[1], member)
        return 1
    end
end
return 0
"""

# Book the lane's next slot for one refused request of a workspace; a workspace holding
# `max` slots is given its latest one instead; a slot past the horizon is not booked (the
# lane's next slot stays where it was). Returns {slot, 1 if booked or given else 0}.
# KEYS: lane's next slot, workspace's slots; ARGV: earliest, spacing, now, grace, max,
# unique member, horizon.
_BOOK = """
local slots = redis.call('ZCARD', KEYS[2])
if slots >= tonumber(ARGV[5]) then
    return {redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')[2], 1}
end
local slot = math.max(tonumber(ARGV[1]), tonumber(redis.call('GET', KEYS[1]) or '0'))
if slot - tonumber(ARGV[3]) > tonumber(ARGV[7]) then
    return {tostring(slot), 0}
end
redis.call('SET', KEYS[1], tostring(slot + tonumber(ARGV[2])))
redis.call('ZADD', KEYS[2], slot, ARGV[6])
redis.call('EXPIRE', KEYS[2], math.ceil(slot - tonumber(ARGV[3]) + tonumber(ARGV[4])))
return {tostring(slot), 1}
"""


def _use_due_slot(workspace: Workspace, request: str, now: float) -> bool:
    slots = _slots_key(workspace)
    return bool(_redis().eval(_USE_SLOT, 1, slots, now, settings.WAITING_ROOM_GRACE, request))


def _book_slot(
    *, workspace: Workspace, request: str, lane: str, earliest: float, spacing: float
) -> tuple[float, bool]:
    """The slot to come back at, and whether a place is kept there."""
    keys = [_room_key(lane), _slots_key(workspace)]
    arguments: list[str | float] = [
        earliest, spacing, time.time(), settings.WAITING_ROOM_GRACE,
        settings.WAITING_ROOM_MAX_SLOTS, f"{request}:{uuid.uuid4().hex}",
        settings.WAITING_ROOM_HORIZON,
    ]  # fmt: skip
    slot, kept = _redis().eval(_BOOK, 2, *keys, *arguments)
    return float(slot), bool(kept)


def admission_check(
    *, workspace: Workspace, plan: Plan, images: int, request: str = ""
) -> QueuePlace | None:
    """Admit the job, or raise Overloaded (503 with Retry-After). Refusals cost nothing.

    `request` names what is asked (a fingerprint of the parameters): a refused request's
    slot in the waiting room is kept for the same request coming back, not for another of
    its workspace's that happens to arrive first. Returns where the admitted job will stand
    in the queue, when that was worked out."""
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

    query = NewJobAhead.read(lane=plan.lane, workspace=workspace, images=images)
    now = time.time()
    pipe = _redis().pipeline(transaction=False)  # one round trip for all of admission's reads
    pipe.exists(_slots_key(workspace))
    pipe.get(_room_key(plan.lane))
    pipe.get(SECONDS_PER_IMAGE_KEY)
    pipe.zcount(lane_workers_key(plan.lane), now - settings.WORKER_ALIVE_TIMEOUT, "+inf")
    pipe.get(SECONDS_PER_BATCH_KEY)
    query.queue(pipe)
    held, next_slot, per_image, workers, per_batch, jobs_ahead, images_ahead = pipe.execute()
    per_image = float(per_image) if per_image is not None else settings.DEFAULT_SECONDS_PER_IMAGE
    workers = max(int(workers), 1)  # those serving the lane: a priority-only one does not
    rate = workers / per_image
    ahead = query.result(jobs_ahead, images_ahead)
    # The later of: the images the fair queue runs first at the lane's rate, and the
    # workspace's own queued jobs, which its plan's cap runs a few at a time.
    expected = max(
        ahead.images / rate,
        capped_wait(
            own_images=ahead.own_images, images=images, cap=plan.max_jobs_in_flight,
            workers=workers, per_image=per_image,
            per_batch=float(per_batch) if per_batch is not None else None,
        ),
    )  # fmt: skip
    wait = max(expected, float(next_slot or 0) - now)
    if wait <= plan.max_wait_seconds:
        return QueuePlace(ahead.jobs + 1, ahead.images, expected)
    if held and _use_due_slot(workspace, request, now):
        return None  # a refused request came back at its slot: it waited its turn
    spacing = images / rate
    slot, kept = _book_slot(
        workspace=workspace,
        request=request,
        lane=plan.lane,
        earliest=now + wait - plan.max_wait_seconds,
        spacing=spacing,
    )
    raise _come_back(slot - now, kept=kept)


def _come_back(seconds: float, *, kept: bool = True) -> Overloaded:
    retry_after = max(math.ceil(seconds), 1)
    if kept:
        message = _("We are over capacity right now. Your place is kept: try again in %(wait)s.")
    else:
        message = _(
            "We are over capacity right now and cannot keep a place that far ahead. "
            "Please try again in %(wait)s."
        )
    return Overloaded(retry_after=retry_after, message=message % {"wait": wait_text(retry_after)})
