"""GET /jobs/<id>/events/: a studio job card, re-rendered on each change of its job, as
Server-Sent Events (htmx's SSE extension swaps each `card` event in; `done` closes it).

The changes are heard on the one notification path (generation/notify.py), as the API's
stream hears them: an open card holds no thread and reads the database only when its job
changed (at most twice a second while it runs; while it waits, when others left the queue,
at most every 2 s). When the stream drops, the card polls
GET /jobs/<id>/ until it is back (web/static/web/live.js).
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.views import View

from billing.selectors import quota_status
from generation.events_api import event_stream_response, job_changes
from generation.models import Job
from generation.waiting import off_loop, request_thread_release
from web.jobs import job_card_context
from web.views import job_card


def sse_html(event: str, html: str) -> bytes:
    data = "".join(f"data: {line}\n" for line in html.strip().splitlines())
    return f"event: {event}\n{data}\n".encode()


def card_html(request: HttpRequest, job_id: str) -> tuple[str, bool]:
    job = Job.objects.prefetch_related("images").get(pk=job_id)
    context: dict[str, Any] = {"card": job_card_context(job)}
    if job.is_finished:  # the meter may have changed (a refund): update it alongside
        context["quota"] = quota_status(workspace=job.workspace)
    return render_to_string("web/_job.html", context, request=request), job.is_finished


class JobCardEventsView(View):
    """Signed in and scoped by the card view (302 to log in, 404), then streamed."""

    http_method_names = ["get"]

    async def get(self, request: HttpRequest, job_id: Any) -> HttpResponse:
        first = await sync_to_async(job_card)(request, job_id=job_id)
        if first.status_code != 200:
            return first
        await request_thread_release()
        return event_stream_response(self.stream(request, str(job_id), first.content.decode()))

    async def stream(self, request: HttpRequest, job_id: str, first: str) -> Any:
        yield sse_html("card", first)
        finished = 'data-status="queued"' not in first and 'data-status="running"' not in first
        if not finished:

            async def render() -> str:
                html, _ = await off_loop(card_html)(request, job_id)
                return html

            # While the job waits, its card (which tells its place) is rendered again when
            # other jobs leave the queue, and sent when it changed.
            changes = job_changes(job_id, render_finished=render, queue_place=render)
            async for change in changes:
                if change is None:
                    yield b": keepalive\n\n"
                elif change[0] in ("completed", "queue"):
                    yield sse_html("card", change[1])
                else:
                    html, _ = await off_loop(card_html)(request, job_id)
                    yield sse_html("card", html)
        yield b"event: done\ndata: done\n\n"
