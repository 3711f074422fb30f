"""GET /api/v1/generations/<id>/events: a job's changes as Server-Sent Events.

The stream opens with the job as the API shows it (`job`), then sends `queue` (its new place
and estimated start while it waits, when other jobs left the queue, at most every 2 s),
`status` (the job started, or was queued again after its worker was lost), `progress` (at
most twice a second) and, when it finishes, `completed` with the job and its images; then
it ends. Changes are heard on the one notification path (generation/notify.py), so an open
stream holds no thread and reads the database only when it opens, when its place may have
changed and when the job finishes. A comment line keeps a quiet stream open through
proxies. Another workspace's job is a 404, as on GET /generations/<id>.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.views import View
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from generation.api import GenerationDetailApi
from generation.models import Job
from generation.notify import QUEUE_MOVED, RESYNC, job_listen
from generation.queue import job_queue_place
from generation.wait_api import job_as_shown
from generation.waiting import off_loop, request_thread_release

EVENT_NAMES = {"start": "status", "requeued": "status", "progress": "progress"}
QUEUE_PLACE_INTERVAL = 2.0  # seconds: a queued job's place is worked out at most this often


def queue_place_of(job_id: str) -> dict[str, Any] | None:
    """What the `queue` event says: the job's place and estimated start (None: not queued)."""
    place = job_queue_place(Job(pk=job_id))
    if place is None:
        return None
    return {
        "id": job_id,
        "queue_position": place.position,
        "estimated_start_seconds": round(place.wait_seconds),
    }


def sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n".encode()


async def job_changes(
    job_id: str,
    *,
    render_finished: Callable[[], Any],
    queue_place: Callable[[], Any] | None = None,
) -> AsyncIterator[tuple[str, Any] | None]:
    """(event name, state) for each change after the stream opened, then ("completed",
    render_finished()); None on each quiet EVENTS_KEEPALIVE_SECONDS. Ends at the finish.

    With `queue_place`, while the job is queued: ("queue", queue_place()) when its place
    changed, worked out when another job left the queue, at most every QUEUE_PLACE_INTERVAL.
    """
    loop_time = time.monotonic
    deadline = loop_time() + settings.EVENTS_STREAM_MAX_SECONDS
    async with job_listen(job_id, follow_queue=queue_place is not None) as listener:
        state = await listener.latest()
        sent: tuple[str, float] | None = None
        place: Any = None
        place_due: float | None = None
        place_read_at = float("-inf")
        while loop_time() < deadline:
            if state is not None:
                if state.get("finished"):
                    yield "completed", await render_finished()
                    return
                now = (state["status"], state["progress"])
                if now != sent:
                    sent = now
                    yield EVENT_NAMES.get(state["event"], "status"), state
            queued = state is None or state["status"] == "queued"
            if queue_place is not None and place_due is not None and loop_time() >= place_due:
                place_due, place_read_at = None, loop_time()
                if queued and (new_place := await queue_place()) != place:
                    place = new_place
                    yield "queue", place
            wait = settings.EVENTS_KEEPALIVE_SECONDS
            if place_due is not None:
                wait = min(wait, max(place_due - loop_time(), 0))
            item = await listener.next(wait)
            if item is None:
                if place_due is None:
                    yield None
                continue
            if item is QUEUE_MOVED:
                if queued and place_due is None:
                    place_due = max(loop_time(), place_read_at + QUEUE_PLACE_INTERVAL)
                continue
            if isinstance(item, dict) and item.get("event") == "partial":
                continue  # a preview for an OpenAI stream, not a change of state
            state = await listener.latest() if item is RESYNC else item


def event_stream_response(stream: AsyncIterator[bytes]) -> StreamingHttpResponse:
    return StreamingHttpResponse(
        stream,
        content_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


class JobEventsOpenApi(GenerationDetailApi):
    """The synchronous half of the events stream: authenticate and find the job (401, 404)."""

    @extend_schema(
        summary="The job's changes as Server-Sent Events",
        operation_id="generations_events",
        description="Events: `job` (the job, first), `queue` (its place and estimated start "
        "while it waits, at most every 2 s), `status` (started, or queued again), "
        "`progress` (at most twice a second), `completed` (the job with its images, last; "
        "then the stream ends). A `:` comment line every EVENTS_KEEPALIVE_SECONDS.",
        responses={
            (200, "text/event-stream"): OpenApiResponse(
                OpenApiTypes.STR, description="event: job\ndata: {...}\n\n ..."
            )
        },
    )
    def get(self, request: Request, job_id: str) -> Response:
        return super().get(request, job_id)


class JobEventsView(View):
    """Authenticated and scoped by JobEventsOpenApi (401, 404), then streamed."""

    http_method_names = ["get"]

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Any:
        view = super().as_view(**initkwargs)
        view.cls, view.initkwargs = JobEventsOpenApi, {}  # drf-spectacular reads the DRF half
        return view

    async def get(self, request: HttpRequest, job_id: Any) -> HttpResponse:
        detail = await sync_to_async(JobEventsOpenApi.as_view())(request, job_id=job_id)
        if detail.status_code != 200:
            return detail
        job = dict(detail.data)
        await request_thread_release()
        return event_stream_response(self.stream(request, str(job_id), job))

    async def stream(
        self, request: HttpRequest, job_id: str, job: dict[str, Any]
    ) -> AsyncIterator[bytes]:
        yield sse("job", job)

        async def render_finished() -> Any:
            return await off_loop(job_as_shown)(request, job_id)

        if job["status"] not in ("queued", "running"):
            yield sse("completed", job)  # every stream ends with `completed`
            return

        async def queue_place() -> Any:
            return await off_loop(queue_place_of)(job_id)

        changes = job_changes(job_id, render_finished=render_finished, queue_place=queue_place)
        async for change in changes:
            if change is None:
                yield b": keepalive\n\n"
            else:
                yield sse(*change)
