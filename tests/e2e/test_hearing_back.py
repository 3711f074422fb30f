"""Hearing back from a job through the web server as shipped, with a real worker:
`Prefer: wait` and the Server-Sent Events stream."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import Person, make_person, small_job
from tests.e2e.conftest import WorkerProcess
from tests.e2e.web_server import web_server

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def server(tmp_path: Path) -> Any:
    with web_server(tmp_path / "web.log", workers=1) as url:
        yield url


def read_events(response: requests.Response) -> list[tuple[str, dict[str, Any]]]:
    """Every event of a stream until the server ends it."""
    events, name, data = [], "message", ""
    for line in response.iter_lines(decode_unicode=True):
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            data = line.removeprefix("data: ")
        elif line == "" and data:
            events.append((name, json.loads(data)))
            name, data = "message", ""
    return events


def test_prefer_wait_answers_with_the_finished_job_and_its_images(
    server: str, celery_worker: WorkerProcess
) -> None:
    alice = make_person("alice@example.com")
    answer = requests.post(
        f"{server}/api/v1/generations",
        json=small_job(),
        headers={"Authorization": f"Bearer {alice.key}", "Prefer": "wait=120"},
        timeout=150,
    )
    assert answer.status_code == 201, answer.text
    job = answer.json()
    assert job["status"] == "succeeded"
    assert answer.headers["Preference-Applied"] == "wait=60"
    [image] = job["images"]
    png = requests.get(image["url"], headers={"Authorization": f"Bearer {alice.key}"}, timeout=10)
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")


def test_the_events_stream_tells_progress_and_completion_in_order_then_ends(
    server: str, celery_worker: WorkerProcess
) -> None:
    alice: Person = make_person("alice@example.com")
    auth = {"Authorization": f"Bearer {alice.key}"}
    submitted = requests.post(
        f"{server}/api/v1/generations", json=small_job(width=128, height=128), headers=auth,
        timeout=10,
    )  # fmt: skip
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    with requests.get(
        f"{server}/api/v1/generations/{job_id}/events", headers=auth, stream=True, timeout=150
    ) as stream:
        assert stream.status_code == 200
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        events = read_events(stream)  # returns only once the server ends the stream
    names = [name for name, _ in events]
    assert names[0] == "job" and events[0][1]["id"] == job_id
    assert names[-1] == "completed", names
    assert "progress" in names, names
    # The job may have started before the stream opened; otherwise it says so first.
    if "status" in names:
        assert names.index("status") < names.index("progress")
    progress = [data["progress"] for name, data in events if name == "progress"]
    assert progress == sorted(progress) and progress[-1] <= 1.0
    finished = events[-1][1]
    assert finished["status"] == "succeeded" and len(finished["images"]) == 1
