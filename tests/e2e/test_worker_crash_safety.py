"""Real worker processes on the priority lane: crashes, races and cancellation."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.utils import timezone

from billing.models import QuotaCounter, QuotaLedgerEntry
from generation.maintenance import jobs_sweep
from generation.models import Job
from tests.conftest import Person, make_person
from tests.e2e.conftest import PRIORITY_LANE, start_worker

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

LONG_JOB = {"prompt": "a red circle on a gray background", "width": 256, "height": 256, "steps": 30}


def wait_until(condition: Callable[[], bool], timeout: float = 600, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def job_state(job_id: str) -> Job:
    return Job.objects.get(pk=job_id)


def submit(person: Person, body: dict[str, object]) -> str:
    response = person.client().post("/api/v1/generations", body, format="json")
    assert response.status_code == 202, response.content
    return response.json()["id"]


def finished_once_by_a_second_worker(
    worker_logs: Path, demo_model: Path, job_id: str, owner: Person
) -> None:
    """The sweeper requeues the job whose worker died (its heartbeat stopped); a second
    worker runs it: two attempts, two pictures stored once each, its images charged once."""
    second = start_worker(worker_logs, lanes=PRIORITY_LANE, GENERATION_MODEL=str(demo_model))
    try:
        later = timezone.now() + timedelta(seconds=settings.JOB_HEARTBEAT_TIMEOUT + 1)
        assert jobs_sweep(at=later).requeued == 1  # the heartbeat stopped: requeue it
        wait_until(lambda: job_state(job_id).is_finished, what="the second worker")
    finally:
        second.stop()

    job = job_state(job_id)
    assert job.status == Job.Status.SUCCEEDED, job.error_message
    assert job.attempts == 2
    assert [image.index for image in job.images.all()] == [0, 1]
    folder = f"images/{job.workspace_id}/{job.id}"
    assert sorted(default_storage.listdir(folder)[1]) == ["0.png", "1.png"]
    kinds = sorted(QuotaLedgerEntry.objects.filter(job=job).values_list("kind", flat=True))
    assert kinds == ["capture", "reserve"]
    assert QuotaCounter.objects.get(workspace=owner.workspace).used == 2


def test_a_job_whose_worker_is_killed_finishes_on_another_worker_stored_and_charged_once(
    worker_logs: Path, demo_model: Path
) -> None:
    pat = make_person("pat@example.com", plan="pro")
    job_id = submit(pat, {**LONG_JOB, "num_images": 2, "seed": 11})
    first = start_worker(worker_logs, lanes=PRIORITY_LANE, GENERATION_MODEL=str(demo_model))
    try:
        wait_until(lambda: job_state(job_id).progress > 0, what="the first worker to start")
        first.kill()  # kill -9 in the middle of the job
    finally:
        first.stop()
    assert job_state(job_id).status == Job.Status.RUNNING

    finished_once_by_a_second_worker(worker_logs, demo_model, job_id, pat)


def test_two_workers_racing_for_the_same_jobs_never_run_one_twice(
    worker_logs: Path, demo_model: Path
) -> None:
    people = [make_person(f"racer{i}@example.com", plan="pro") for i in range(3)]
    job_ids = [
        submit(person, {"prompt": f"a green square {n}", "width": 64, "height": 64, "seed": n})
        for n in range(4)
        for person in people
    ]
    workers = [
        start_worker(worker_logs, lanes=PRIORITY_LANE, GENERATION_MODEL=str(demo_model))
        for _ in range(2)
    ]
    try:
        wait_until(
            lambda: all(job_state(job_id).is_finished for job_id in job_ids), what="all jobs"
        )
    finally:
        for worker in workers:
            worker.stop()
    jobs = Job.objects.filter(pk__in=job_ids)
    assert {job.status for job in jobs} == {Job.Status.SUCCEEDED}
    assert {job.attempts for job in jobs} == {1}
    assert all(job.images.count() == 1 for job in jobs)
    assert QuotaLedgerEntry.objects.filter(kind="capture").count() == len(job_ids)


def test_cancelling_a_running_job_stops_it_at_the_next_step_and_refunds_it(
    worker_logs: Path, demo_model: Path
) -> None:
    pat = make_person("pat@example.com", plan="pro")
    job_id = submit(pat, LONG_JOB)
    worker = start_worker(worker_logs, lanes=PRIORITY_LANE, GENERATION_MODEL=str(demo_model))
    try:
        wait_until(lambda: job_state(job_id).progress > 0, what="the job to start")
        response = pat.client().post(f"/api/v1/generations/{job_id}/cancel")
        assert response.status_code == 200
        assert response.json()["status"] == "cancelled"
        assert QuotaCounter.objects.get(workspace=pat.workspace).used == 0  # refunded at once

        # The worker is free again: it runs the next job.
        next_id = submit(pat, {"prompt": "a blue circle", "width": 64, "height": 64})
        wait_until(lambda: job_state(next_id).is_finished, what="the next job")
    finally:
        worker.stop()
    log = worker.log.read_text()
    assert "Stopped at step" in log and "of 30: every job of the batch was cancelled" in log
    job = job_state(job_id)
    assert job.status == Job.Status.CANCELLED
    assert job.progress < 1.0
    assert not job.images.exists()
    kinds = sorted(QuotaLedgerEntry.objects.filter(job=job).values_list("kind", flat=True))
    assert kinds == ["release", "reserve"]
    assert job_state(next_id).status == Job.Status.SUCCEEDED
    assert QuotaCounter.objects.get(workspace=pat.workspace).used == 1


def test_a_worker_killed_between_storing_a_batch_and_settling_it_charges_the_job_once(
    worker_logs: Path, demo_model: Path
) -> None:
    """The pipeline's post-render stage: the pictures are encoded and their files written,
    the settling transaction has not committed. Holding the workspace's flow lock, which
    settling takes first, keeps the worker there until it is killed."""
    pat = make_person("pat@example.com", plan="pro")
    job_id = submit(pat, {**LONG_JOB, "num_images": 2, "seed": 12})
    folder = f"images/{pat.workspace.pk}/{job_id}"
    first = start_worker(worker_logs, lanes=PRIORITY_LANE, GENERATION_MODEL=str(demo_model))
    try:
        wait_until(lambda: job_state(job_id).progress > 0, what="the first worker to start")
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT 1 FROM generation_queueflow WHERE workspace_id = %s FOR UPDATE",
                [pat.workspace.pk],
            )
            wait_until(
                lambda: all(default_storage.exists(f"{folder}/{n}.png") for n in (0, 1)),
                what="both pictures encoded and stored",
            )
            time.sleep(0.5)  # settling is now waiting for the lock
            first.kill()  # kill -9 in the post-render stage
    finally:
        first.stop()
    assert "Rendered a batch of 1 jobs, 2 images" in first.log.read_text()
    job = job_state(job_id)
    assert job.status == Job.Status.RUNNING
    assert not job.images.exists()
    assert list(QuotaLedgerEntry.objects.filter(job=job).values_list("kind", flat=True)) == [
        "reserve"
    ]

    # Its files are replaced, once.
    finished_once_by_a_second_worker(worker_logs, demo_model, job_id, pat)
