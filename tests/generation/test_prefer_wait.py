"""`Prefer: wait` on the native API, in-process through the web process's front door.

Many requests waiting on queued jobs (no worker serves the priority lane) hold a handful of
threads and run no query while they wait: they hear the jobs' changes on the notification
path (generation/notify.py) instead of polling the database.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db.backends.utils import CursorWrapper

from billing.models import Plan
from config.prefer import prefer_wait_seconds
from generation.models import Job
from tests.conftest import Person, make_person, small_job
from tests.generation.test_openai_waiting import asgi_post, cancel_all, queued_jobs

pytestmark = pytest.mark.django_db(transaction=True)

WAITERS = 50


def paid_person(email: str) -> Person:
    person = make_person(email, plan="pro")
    Plan.objects.filter(slug="pro").update(
        daily_images=1000, requests_per_minute=1000, max_jobs_in_flight=1000,
        max_wait_seconds=100_000,
    )  # fmt: skip
    return person


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("wait", 60), ("wait=5", 5), ("respond-async, wait=10", 10), ("wait=600", 60),
        ("wait=0", None), ("wait=soon", None), ("return=minimal", None), (None, None),
    ],
)  # fmt: skip
def test_the_prefer_header_is_read_as_rfc_7240_says(
    header: str | None, seconds: int | None
) -> None:
    assert prefer_wait_seconds(header, 60) == seconds


def test_fifty_waiting_requests_hold_a_handful_of_threads_and_query_nothing(
    monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    erin = paid_person("erin@example.com")
    from config.asgi import application

    queries: list[str] = []
    counting = threading.Event()
    execute = CursorWrapper._execute_with_wrappers

    def counted(self: CursorWrapper, sql: str, *args: Any, **kwargs: Any) -> Any:
        if counting.is_set():
            queries.append(sql)
        return execute(self, sql, *args, **kwargs)

    # Every query of every thread of this process goes through this method.
    monkeypatch.setattr(CursorWrapper, "_execute_with_wrappers", counted)

    async def scenario() -> tuple[int, int, list[dict[str, Any]]]:
        loop = asyncio.get_running_loop()
        baseline = threading.active_count()
        waiters = [
            asyncio.create_task(
                asgi_post(
                    application, "/api/v1/generations", small_job(), erin.key,
                    headers=[(b"prefer", b"wait=300")],
                )
            )
            for _ in range(WAITERS)
        ]  # fmt: skip
        deadline = loop.time() + 90
        while await sync_to_async(queued_jobs)() < WAITERS and loop.time() < deadline:
            await asyncio.sleep(0.1)
        while threading.active_count() - baseline >= 10 and loop.time() < deadline:
            await asyncio.sleep(0.1)
        extra_threads = threading.active_count() - baseline
        counting.set()
        await asyncio.sleep(3)  # every request waiting: a poller would query many times here
        counting.clear()
        waited = len(queries)
        counting.set()  # the counter sees other threads' queries: the answers' reads
        await sync_to_async(cancel_all)()  # each job finishes (cancelled): each waiter answers
        answers = await asyncio.gather(*waiters)
        counting.clear()
        return extra_threads, waited, answers

    extra_threads, waited, answers = asyncio.run(scenario())
    assert Job.objects.filter(workspace=erin.workspace).count() == WAITERS
    assert extra_threads < 10, f"{extra_threads} threads for {WAITERS} waiting requests"
    assert waited == 0, f"{waited} queries while {WAITERS} requests waited: {queries[:3]}"
    assert len(queries) >= WAITERS  # each answer read its job once the wait ended
    assert [answer["status"] for answer in answers] == [201] * WAITERS
    assert {answer["body"]["status"] for answer in answers} == {"cancelled"}
    # Bounded by PREFER_WAIT_MAX_SECONDS (60 by default).
    assert {answer["headers"]["preference-applied"] for answer in answers} == {"wait=60"}


def test_a_job_that_does_not_finish_within_the_wait_is_a_202_at_the_bound(settings: Any) -> None:
    settings.PREFER_WAIT_MAX_SECONDS = 1
    erin = paid_person("erin@example.com")
    started = time.monotonic()
    answer = erin.client().post(
        "/api/v1/generations", small_job(), format="json", HTTP_PREFER="wait=30"
    )
    waited = time.monotonic() - started
    assert answer.status_code == 202, answer.content
    assert answer.json()["status"] == "queued"
    assert answer["Preference-Applied"] == "wait=1"
    assert waited >= 1.0
    assert answer.has_header("X-RateLimit-Remaining-Images")


def test_refusals_are_answered_at_once_as_without_the_header(bob: Person) -> None:
    answer = bob.client().post(
        "/api/v1/generations", small_job(width=4096), format="json", HTTP_PREFER="wait"
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "width"


def test_an_idempotent_replay_of_a_finished_job_is_a_200_with_prefer_wait(
    alice: Person,
) -> None:
    headers = {"HTTP_IDEMPOTENCY_KEY": "once"}
    first = alice.client().post("/api/v1/generations", small_job(), format="json", **headers)
    alice.client().post(f"/api/v1/generations/{first.json()['id']}/cancel")
    again = alice.client().post(
        "/api/v1/generations", small_job(), format="json", HTTP_PREFER="wait=5", **headers
    )
    assert again.status_code == 200, again.content
    assert again["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"] and again.json()["status"] == "cancelled"
