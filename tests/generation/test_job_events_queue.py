"""The events stream tells a queued job's place as jobs ahead of it leave the queue, in
order, and ends with the job: in-process, through the web process's front door."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connection

from generation.models import Job
from generation.notify import job_event, job_events_publish
from generation.queue import job_claim_batch
from generation.services import job_cancel
from tests.conftest import small_job
from tests.generation.test_prefer_wait import paid_person

pytestmark = pytest.mark.django_db(transaction=True)


async def asgi_stream(app: Any, path: str, key: str, events: asyncio.Queue[Any]) -> int:
    """GET `path` through the ASGI app; each event of the stream goes to `events`."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 40000), "server": ("localhost", 80),
        "headers": [(b"host", b"localhost"), (b"authorization", f"Bearer {key}".encode())],
    }  # fmt: skip
    done = asyncio.Event()
    status = 0
    buffer = ""

    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()  # connected until the stream ends
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, buffer
        if message["type"] == "http.response.start":
            status = message["status"]
            return
        buffer += message.get("body", b"").decode()
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
            if "event" in fields:
                await events.put((fields["event"], json.loads(fields["data"])))
        if not message.get("more_body"):
            done.set()
            await events.put(None)

    await app(scope, receive, send)
    return status


def claim_one() -> Job:
    """What a worker does first: claim the next job and tell that it started."""
    try:
        [job] = job_claim_batch(worker="test-worker", lanes=["priority"], max_images=1)
        job_events_publish([job_event(job.pk, "start", "running", 0.0)])
        return job
    finally:
        connection.close()


def cancel(job_id: str) -> None:
    try:
        job_cancel(job=Job.objects.get(pk=job_id))
    finally:
        connection.close()


def test_a_queued_jobs_place_is_told_as_the_queue_moves_then_its_end(settings: Any) -> None:
    from config.asgi import application

    erin = paid_person("erin@example.com")
    ids = [
        erin.client().post("/api/v1/generations", small_job(seed=n), format="json").json()["id"]
        for n in range(3)
    ]
    last = ids[-1]

    async def scenario() -> tuple[int, list[Any]]:
        events: asyncio.Queue[Any] = asyncio.Queue()
        path = f"/api/v1/generations/{last}/events"
        stream = asyncio.create_task(asgi_stream(application, path, erin.key, events))
        seen = [await asyncio.wait_for(events.get(), 30)]  # `job`
        await sync_to_async(claim_one)()
        seen.append(await asyncio.wait_for(events.get(), 30))  # `queue`: one fewer ahead
        await sync_to_async(claim_one)()
        seen.append(await asyncio.wait_for(events.get(), 30))  # (at most every 2 s)
        await sync_to_async(cancel)(last)
        while (item := await asyncio.wait_for(events.get(), 30)) is not None:
            seen.append(item)
        return await stream, seen

    status, seen = asyncio.run(scenario())
    assert status == 200
    assert [name for name, _ in seen] == ["job", "queue", "queue", "completed"]
    assert [data.get("queue_position") for _, data in seen[:3]] == [3, 2, 1]
    assert seen[-1][1]["status"] == "cancelled"
