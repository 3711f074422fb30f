"""Job-change notifications: the one path by which waits, event streams and webhooks hear back.

A job's state changes (started, progress, finished) are published after their commit on one
Redis pub/sub channel, and the latest state of each job is kept beside it under a key with a
TTL. Each web process holds one subscription (a `Hub` per event loop) and hands each message
to the coroutines waiting for that job: `Prefer: wait` on the native API, the OpenAI-compatible
endpoints and the Server-Sent Events streams. A waiter therefore costs a dictionary entry and
a queue, not a thread or a database query: the database is read once when the wait ends, to
answer with the job as it is.

No gap between "read the state" and "listen": a waiter registers with the (already live)
subscription first, then reads the latest state key. A message that raced the read arrives
as well and only repeats it. When the subscription drops, every waiter is told to read the
state again once it is back (`RESYNC`).

Admission publishes nothing (a new job is queued, which is what a missing state key means),
so the submission path costs nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import weakref
from collections.abc import AsyncIterator, Iterable
from typing import Any

import redis
import redis.asyncio as aioredis
from django.conf import settings
from django.db import transaction

from generation.queue import redis_client
from generation.webhooks import webhooks_dispatch

logger = logging.getLogger(__name__)

CHANNEL = "atelier:job-events"
STATE_KEY = "atelier:job-state:{}"
STATE_TTL = 24 * 3600  # seconds; a job older than this is read from the database
PARTIALS_KEY = "atelier:job-partials:{}"
PARTIALS_TTL = 300  # seconds a job's previews are kept for a stream that subscribes late
RESYNC = object()  # told to waiters when the subscription was lost and is back
QUEUE_MOVED = object()  # told to those following a queued job's place: a job left the queue
# Changes of any job that move the others' places (one was taken, put back or cancelled).
MOVES_QUEUE = ("start", "requeued", "completed")

FINISHED_STATUSES = ("succeeded", "failed", "cancelled")


def job_event(job_id: Any, event: str, status: str, progress: float) -> dict[str, Any]:
    """One job change as published: `event` is start, progress, completed or requeued (or
    partial: a preview, which is no change of state)."""
    return {
        "id": str(job_id),
        "event": event,
        "status": status,
        "progress": round(float(progress), 4),
        "finished": status in FINISHED_STATUSES,
    }


def job_events_publish(events: Iterable[dict[str, Any]]) -> None:
    """Publish job changes now: the state keys, then one message each (one round trip).

    Never raises: a lost notification leaves waiters to their timeouts (they then read the
    database), which must not fail the settlement of a job that is already committed."""
    events = list(events)
    if not events:
        return
    pipe = redis_client().pipeline(transaction=False)
    for event in events:
        body = json.dumps(event)
        pipe.set(STATE_KEY.format(event["id"]), body, ex=STATE_TTL)
        pipe.publish(CHANNEL, body)
    try:
        pipe.execute()
    except redis.RedisError:
        logger.warning("Job events not published (Redis unreachable): %d lost", len(events))


def job_partial_publish(job_id: Any, partial: dict[str, Any]) -> None:
    """Publish a preview of a running job (an OpenAI stream's partial image) to whoever
    streams it, and keep it for PARTIALS_TTL so that a stream that subscribes late still
    gets it. Not a state change: no state key, no webhook. Never raises."""
    body = json.dumps({**job_event(job_id, "partial", "running", 0.0), **partial})
    key = PARTIALS_KEY.format(job_id)
    pipe = redis_client().pipeline(transaction=False)
    pipe.rpush(key, body)
    pipe.expire(key, PARTIALS_TTL)
    pipe.publish(CHANNEL, body)
    try:
        pipe.execute()
    except redis.RedisError:
        logger.warning("Partial image of job %s not published (Redis unreachable)", job_id)


def job_events_on_commit(events: list[dict[str, Any]]) -> None:
    """Publish once the current transaction commits (now, outside one); then hand the events
    to the webhooks (generation/webhooks.py), which decide whether anyone listens."""

    def send() -> None:
        job_events_publish(events)
        try:
            webhooks_dispatch(events)
        except Exception:  # a webhook must never fail the job's own bookkeeping
            logger.exception("Webhook dispatch failed for %d job events", len(events))

    transaction.on_commit(send)


class Hub:
    """One Redis subscription per event loop, shared by every waiter on that loop."""

    def __init__(self) -> None:
        self.listeners: dict[str, set[asyncio.Queue[Any]]] = {}
        self.queue_followers: set[JobListener] = set()
        self.client = aioredis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2)
        self.ready = asyncio.Event()
        self.reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.reader = asyncio.create_task(self._run(), name="job-events")
        try:
            await asyncio.wait_for(self.ready.wait(), timeout=5)
        except BaseException:
            self.reader.cancel()
            raise

    async def _run(self) -> None:
        delay = 0.1
        while True:
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(CHANNEL)
                if self.ready.is_set():  # back after a loss: whatever was missed, read again
                    self._broadcast(RESYNC)
                self.ready.set()
                delay = 0.1
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is not None and message["type"] == "message":
                        self._deliver(message["data"])
            except (redis.RedisError, OSError) as exc:
                logger.warning("Job events subscription lost (%s); reconnecting", exc)
                self._broadcast(RESYNC)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _deliver(self, data: bytes) -> None:
        try:
            event = json.loads(data)
        except ValueError:
            return
        for queue in self.listeners.get(event.get("id", ""), ()):
            queue.put_nowait(event)
        if event.get("event") in MOVES_QUEUE:
            for follower in self.queue_followers:
                follower.queue_moved()

    def _broadcast(self, item: object) -> None:
        for queues in self.listeners.values():
            for queue in queues:
                queue.put_nowait(item)


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = weakref.WeakKeyDictionary()
_hub_starting: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Future[Hub]] = (
    weakref.WeakKeyDictionary()
)


async def hub() -> Hub:
    """This event loop's hub, subscribed (started by its first waiter)."""
    loop = asyncio.get_running_loop()
    if loop in _hubs:
        return _hubs[loop]
    if loop not in _hub_starting:
        future: asyncio.Future[Hub] = loop.create_future()
        _hub_starting[loop] = future
        try:
            started = Hub()
            await started.start()
        except BaseException as exc:
            del _hub_starting[loop]
            future.set_exception(exc)
            future.exception()  # retrieved: the waiters below re-raise it
            raise
        _hubs[loop] = started
        future.set_result(started)
        return started
    return await asyncio.shield(_hub_starting[loop])


class JobListener:
    """The changes of one job, in the order they were published."""

    def __init__(self, job_id: str, hub: Hub) -> None:
        self.job_id = job_id
        self.hub = hub
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.moved_pending = False

    def queue_moved(self) -> None:
        if not self.moved_pending:  # one is enough until it is read
            self.moved_pending = True
            self.queue.put_nowait(QUEUE_MOVED)

    async def latest(self) -> dict[str, Any] | None:
        """The job's latest published state; None if none was (still queued, or too old)."""
        raw = await self.hub.client.get(STATE_KEY.format(self.job_id))
        return json.loads(raw) if raw else None

    async def partials(self) -> list[dict[str, Any]]:
        """The previews published so far (job_partial_publish). Read after entering."""
        raw = await self.hub.client.lrange(PARTIALS_KEY.format(self.job_id), 0, -1)
        return [json.loads(item) for item in raw]

    async def next(self, timeout: float) -> Any:
        """The next change, RESYNC, QUEUE_MOVED (when following the queue), or None when
        `timeout` seconds pass without one."""
        try:
            item = await asyncio.wait_for(self.queue.get(), timeout=max(timeout, 0))
        except TimeoutError:
            return None
        if item is QUEUE_MOVED:
            self.moved_pending = False
        return item


@contextlib.asynccontextmanager
async def job_listen(job_id: Any, *, follow_queue: bool = False) -> AsyncIterator[JobListener]:
    """Listen to a job's changes (and, following the queue, to other jobs leaving it). Read
    `latest()` after entering, never before."""
    shared = await hub()
    listener = JobListener(str(job_id), shared)
    shared.listeners.setdefault(listener.job_id, set()).add(listener.queue)
    if follow_queue:
        shared.queue_followers.add(listener)
    try:
        yield listener
    finally:
        shared.queue_followers.discard(listener)
        queues = shared.listeners.get(listener.job_id)
        if queues is not None:
            queues.discard(listener.queue)
            if not queues:
                del shared.listeners[listener.job_id]


async def job_finished_wait(job_id: Any, *, timeout: float) -> bool:
    """Whether the job finished within `timeout` seconds (heard, never polled)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with job_listen(job_id) as listener:
        state = await listener.latest()
        while not (state and state.get("finished")):
            item = await listener.next(deadline - loop.time())
            if item is None:
                return False
            state = await listener.latest() if item is RESYNC else item
    return True
