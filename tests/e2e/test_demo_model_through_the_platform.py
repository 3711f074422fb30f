"""The trained demo model through the real platform: API, queue, worker, storage."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest
import requests
from PIL import Image as PILImage

from generation.demo_data import Scene, read_image
from generation.models import Job
from tests.conftest import follow_verification_link_live, make_person
from tests.e2e.conftest import PRIORITY_LANE, WorkerProcess, start_worker, wait_for_job

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def signed_up(base: str, email: str) -> requests.Session:
    session = requests.Session()
    signup = session.post(
        f"{base}/signup",
        json={"email": email, "password": "a long and unusual passphrase"},
        timeout=10,
    )
    assert signup.status_code == 201, signup.text
    follow_verification_link_live(email)  # as the mail asks
    session.headers["Authorization"] = f"Bearer {signup.json()['api_key']}"
    return session


def picture_of(session: requests.Session, base: str, job_id: str) -> PILImage.Image:
    job = wait_for_job(session, f"{base}/generations/{job_id}")
    assert job["status"] == "succeeded", job
    [image] = job["images"]
    download = session.get(image["url"], timeout=10)
    assert download.status_code == 200
    return PILImage.open(io.BytesIO(download.content))


def test_the_same_seed_and_parameters_give_the_same_png_twice(
    live_server: object, celery_worker: WorkerProcess
) -> None:
    base = f"{live_server.url}/api/v1"  # type: ignore[attr-defined]
    session = signed_up(base, "erin@example.com")
    body = {"prompt": "a green triangle on a white background", "seed": 1234}
    first, second = (session.post(f"{base}/generations", json=body, timeout=10) for _ in range(2))
    assert first.status_code == second.status_code == 202
    a = picture_of(session, base, first.json()["id"])
    b = picture_of(session, base, second.json()["id"])
    # The PNGs differ only in the text chunk naming their job.
    assert a.tobytes() == b.tobytes()
    assert {k: v for k, v in a.text.items() if k != "job"} == {
        k: v for k, v in b.text.items() if k != "job"
    }
    assert a.text["job"] != b.text["job"]


def test_two_jobs_run_in_one_micro_batch_and_each_gets_its_own_prompts_picture(
    worker_logs: Path, demo_model: Path
) -> None:
    scenes = [Scene("red", "circle", "gray"), Scene("blue", "square", "black")]
    people = [make_person("heidi@example.com", "pro"), make_person("ivan@example.com", "pro")]
    body = {"width": 32, "height": 32, "steps": 20, "guidance": 3.0}
    job_ids = []
    for person, scene, seed in zip(people, scenes, (5, 6), strict=True):
        response = person.client().post(
            "/api/v1/generations", {**body, "prompt": scene.prompt, "seed": seed}, format="json"
        )
        assert response.status_code == 202, response.content
        job_ids.append(response.json()["id"])
    # Both are queued before a worker for their lane starts: its first claim takes both.
    worker = start_worker(worker_logs, lanes=PRIORITY_LANE, GENERATION_MODEL=str(demo_model))
    try:
        deadline = time.monotonic() + 180
        while Job.objects.filter(pk__in=job_ids, status__in=Job.ACTIVE_STATUSES).exists():
            assert time.monotonic() < deadline, "the jobs did not finish"
            time.sleep(0.2)
    finally:
        worker.stop()
    first, second = (Job.objects.get(pk=job_id) for job_id in job_ids)
    assert first.status == second.status == Job.Status.SUCCEEDED
    assert first.started_at == second.started_at  # claimed together, in one batch
    for job, scene in ((first, scenes[0]), (second, scenes[1])):
        with job.images.get().file.open("rb") as stored:
            reading = read_image(PILImage.open(stored))
        # Colour and background are what swapped prompts (or seeds) would get wrong.
        assert (reading.colour, reading.background) == (scene.colour, scene.background)
