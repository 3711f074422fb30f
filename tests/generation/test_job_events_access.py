"""The events stream of a job is its workspace's alone: bob gets 404, charlie 401."""

from __future__ import annotations

import asyncio

import pytest
from rest_framework.test import APIClient

from generation.models import Job
from tests.conftest import Person, make_person, small_job

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def alice() -> Person:
    """On a paid plan: her job waits in the priority lane, which the suite's shared worker
    does not serve, so no worker settles it while a test reads it or the flush truncates
    the tables at its end."""
    return make_person("alice@example.com", plan="pro")


@pytest.fixture
def alices_job(alice: Person) -> Job:
    answer = alice.client().post("/api/v1/generations", small_job(), format="json")
    assert answer.status_code == 202, answer.content
    return Job.objects.get(pk=answer.json()["id"])


def test_bob_cannot_open_alices_job_events(alices_job: Job, bob: Person) -> None:
    answer = bob.client().get(f"/api/v1/generations/{alices_job.id}/events")
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "not_found"


def test_charlie_needs_a_key(alices_job: Job, charlie: APIClient) -> None:
    answer = charlie.get(f"/api/v1/generations/{alices_job.id}/events")
    assert answer.status_code == 401


def test_a_finished_job_streams_itself_and_ends(alices_job: Job, alice: Person) -> None:
    alice.client().post(f"/api/v1/generations/{alices_job.id}/cancel")
    answer = alice.client().get(f"/api/v1/generations/{alices_job.id}/events")
    assert answer.status_code == 200
    assert answer["Content-Type"] == "text/event-stream"

    async def read() -> bytes:
        return b"".join([chunk async for chunk in answer.streaming_content])  # type: ignore[attr-defined]

    text = asyncio.run(read()).decode()
    assert [line for line in text.splitlines() if line.startswith("event:")] == [
        "event: job",
        "event: completed",
    ]
    assert '"status": "cancelled"' in text
