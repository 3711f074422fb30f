"""OpenAI's streamed image requests (`stream=true`): Server-Sent Events in OpenAI's shapes.

`image_generation.partial_image` (or `image_edit.partial_image`) for each preview the worker
publishes (generation/partials.py), then one `image_generation.completed` (or
`image_edit.completed`) per image; a refusal after admission, a cancellation, a failure or a
timeout ends the stream with an `error` event in OpenAI's shape, which the openai package
raises as an APIError. A refusal at admission (quota, rate, policy) is an ordinary error
answer before any event. Previews and the finish are heard on the one notification path
(generation/notify.py): an open stream holds no thread and reads the database only when
the job ends. A stream the client leaves, or one past OPENAI_WAIT_SECONDS, cancels its job,
which is then not charged.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from django.conf import settings
from django.utils.translation import gettext as _

from config.api_errors import error_body
from generation.models import Job
from generation.notify import RESYNC, job_listen
from generation.waiting import job_abandon, off_loop


def openai_usage(images: int) -> dict[str, Any]:
    """OpenAI's `usage`: images made are the output (the quota's unit); prompts and input
    images are not metered here, so input tokens are 0."""
    return {
        "input_tokens": 0,
        "input_tokens_details": {"image_tokens": 0, "text_tokens": 0},
        "output_tokens": images,
        "total_tokens": images,
    }


def sse_event(body: dict[str, Any]) -> bytes:
    return f"event: {body['type']}\ndata: {json.dumps(body)}\n\n".encode()


def _finished_job(job_id: str) -> tuple[Job, list[str]]:
    """The job and, when it succeeded, each image's bytes in base64."""
    job = Job.objects.prefetch_related("images").get(pk=job_id)
    encoded = []
    if job.status == Job.Status.SUCCEEDED:
        for image in job.images.all():
            with image.file.open("rb") as file:
                encoded.append(base64.b64encode(file.read()).decode())
    return job, encoded


def _error_event(code: str, message: str, status: int) -> bytes:
    body = error_body(code=code, message=message, status_code=status)
    return sse_event({"type": "error", **body})


async def openai_image_events(
    job_id: str, *, event_prefix: str, quality: str
) -> AsyncIterator[bytes]:
    """The events of an admitted job's stream, until it ends (see the module's docstring)."""
    shape = {"quality": quality, "background": "opaque"}
    sent: set[int] = set()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.OPENAI_WAIT_SECONDS
    try:
        async with job_listen(job_id) as listener:
            pending: list[Any] = [*await listener.partials(), await listener.latest()]
            finished = False
            while not finished:
                for item in pending:
                    if not isinstance(item, dict):
                        continue
                    if item.get("event") == "partial":
                        index = item["partial_image_index"]
                        if index not in sent:
                            sent.add(index)
                            yield sse_event(
                                {
                                    "type": f"{event_prefix}.partial_image",
                                    "b64_json": item["b64_json"],
                                    "created_at": int(time.time()),
                                    "partial_image_index": index,
                                    "size": item["size"],
                                    "output_format": item["output_format"],
                                    **shape,
                                }
                            )
                    elif item.get("finished"):
                        finished = True
                if finished:
                    break
                left = deadline - loop.time()
                item = await listener.next(min(left, settings.EVENTS_KEEPALIVE_SECONDS))
                if item is None:
                    if left <= settings.EVENTS_KEEPALIVE_SECONDS:
                        break  # past OPENAI_WAIT_SECONDS
                    yield b": keepalive\n\n"  # an SSE comment: clients skip it, proxies see life
                    pending = []
                    continue
                pending = (
                    [*await listener.partials(), await listener.latest()]
                    if item is RESYNC
                    else [item]
                )
        job, images = await off_loop(_finished_job)(job_id)
        if not job.is_finished:
            job = await job_abandon(job_id)
            if job.status == Job.Status.CANCELLED:
                yield _error_event(
                    "generation_timeout",
                    _(
                        "The GPUs are busy: the image was not ready within %(seconds)d s. It "
                        "was cancelled and nothing was charged; try again shortly."
                    )
                    % {"seconds": settings.OPENAI_WAIT_SECONDS},
                    503,
                )
                return
            job, images = await off_loop(_finished_job)(job_id)
    except BaseException:
        # The client went away (the stream is closed or its task cancelled): nobody will
        # take the images, so the job is cancelled and not charged.
        await job_abandon(job_id)
        raise
    if job.status == Job.Status.FAILED:
        yield _error_event(
            job.error_code or "generation_failed",
            job.error_message or _("The job failed. Nothing was charged."),
            500,
        )
        return
    if job.status != Job.Status.SUCCEEDED:
        yield _error_event(
            "job_cancelled",
            _("The job was %(status)s. Nothing was charged.")
            % {"status": job.get_status_display()},
            409,
        )
        return
    for data in images:
        yield sse_event(
            {
                "type": f"{event_prefix}.completed",
                "b64_json": data,
                "created_at": int((job.finished_at or job.created_at).timestamp()),
                "size": f"{job.width}x{job.height}",
                "output_format": job.output_format,
                "usage": openai_usage(1),
                **shape,
            }
        )
