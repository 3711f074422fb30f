"""Under ASGI, requests waiting for their images hold no thread each.

Django's ASGI handler, and the front door that routes to it (config/front_door.py), in-process,
with many OpenAI-compatible requests waiting on queued jobs (no worker runs): the process keeps
a handful of threads, not one per waiting request.
"""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIHandler
from django.db import connection

from billing.models import Plan
from generation.models import Job
from generation.services import job_cancel
from tests.conftest import make_person

# The app's threads read what the test wrote: a transactional test.
pytestmark = pytest.mark.django_db(transaction=True)

WAITERS = 24


async def asgi_post(
    app: ASGIHandler,
    path: str,
    body: dict[str, object],
    key: str,
    headers: list[tuple[bytes, bytes]] = (),  # type: ignore[assignment]
) -> dict:
    """One request through the ASGI app, as an ASGI server sends it."""
    payload = json.dumps(body).encode()
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 40000), "server": ("localhost", 80),
        "headers": [
            (b"host", b"localhost"), (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
            (b"authorization", f"Bearer {key}".encode()), *headers,
        ],
    }  # fmt: skip
    answered = asyncio.Event()
    messages: list[dict] = []
    request_sent = False

    async def receive() -> dict:
        nonlocal request_sent
        if not request_sent:
            request_sent = True
            return {"type": "http.request", "body": payload, "more_body": False}
        await answered.wait()  # the client stays connected until it has its answer
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        messages.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            answered.set()

    await app(scope, receive, send)
    body_bytes = b"".join(m.get("body", b"") for m in messages if m["type"].endswith("body"))
    head = {k.decode("latin1").lower(): v.decode("latin1") for k, v in messages[0]["headers"]}
    return {"status": messages[0]["status"], "body": json.loads(body_bytes), "headers": head}


# The test's own queries run on asgiref's long-lived thread: each closes its connection.
def queued_jobs() -> int:
    try:
        return Job.objects.filter(status=Job.Status.QUEUED).count()
    finally:
        connection.close()


def cancel_all() -> None:
    try:
        for job in Job.objects.filter(status=Job.Status.QUEUED):
            job_cancel(job=job)
    finally:
        connection.close()


def shipped_front_door() -> object:
    """The web process's application as gunicorn serves it (config/asgi.py)."""
    from config.asgi import application

    return application


@pytest.mark.parametrize(
    "make_app", [ASGIHandler, shipped_front_door], ids=["django_asgi", "front_door"]
)
def test_waiting_requests_hold_no_thread_each(settings: object, make_app: object) -> None:
    settings.OPENAI_WAIT_SECONDS = 300  # type: ignore[attr-defined]
    # The priority lane: no shared test worker serves it, so the jobs stay queued.
    erin = make_person("erin@example.com", plan="pro")
    Plan.objects.filter(slug="pro").update(
        daily_images=1000, requests_per_minute=1000, max_jobs_in_flight=1000,
        max_wait_seconds=100_000,
    )  # fmt: skip
    app = make_app()  # type: ignore[operator]
    body = {"prompt": "a red circle on a gray background", "size": "64x64"}

    async def scenario() -> tuple[int, int, list[dict]]:
        loop = asyncio.get_running_loop()
        baseline = threading.active_count()
        waiters = [
            asyncio.create_task(asgi_post(app, "/v1/images/generations", body, erin.key))
            for _ in range(WAITERS)
        ]
        # Every request admitted, then every view waiting: the threads settle.
        deadline = loop.time() + 60
        while await sync_to_async(queued_jobs)() < WAITERS and loop.time() < deadline:
            await asyncio.sleep(0.05)
        while threading.active_count() - baseline >= WAITERS // 2 and loop.time() < deadline:
            await asyncio.sleep(0.05)
        extra_threads = threading.active_count() - baseline
        queued = await sync_to_async(queued_jobs)()
        await sync_to_async(cancel_all)()  # every waiter gets its answer now
        return extra_threads, queued, await asyncio.gather(*waiters)

    extra_threads, queued, answers = asyncio.run(scenario())
    assert queued == WAITERS, answers[:2]
    assert extra_threads < WAITERS // 2, f"{extra_threads} threads for {WAITERS} waiting requests"
    assert [answer["status"] for answer in answers] == [409] * WAITERS
    assert {answer["body"]["error"]["code"] for answer in answers} == {"job_cancelled"}
