from __future__ import annotations

import pytest

from billing.models import QuotaCounter, QuotaLedgerEntry
from billing.quotas import quota_capture, quota_release
from generation.models import Job
from generation.queue import job_claim_batch
from generation.services import GeneratedImage, job_complete, job_fail
from tests.conftest import Person, small_job

pytestmark = pytest.mark.django_db


def submit(person: Person) -> Job:
    response = person.client().post("/api/v1/generations", small_job(), format="json")
    assert response.status_code == 202
    return Job.objects.get(pk=response.json()["id"])


def claim(worker: str) -> list[Job]:
    return job_claim_batch(worker=worker, lanes=["priority", "standard", "free"], max_images=8)


def used(person: Person) -> int:
    return QuotaCounter.objects.get(workspace=person.workspace).used


def kinds(job: Job) -> list[str]:
    return sorted(QuotaLedgerEntry.objects.filter(job=job).values_list("kind", flat=True))


def test_a_job_that_fails_on_the_worker_gives_its_image_back(alice: Person) -> None:
    job = submit(alice)
    assert used(alice) == 1
    [claimed] = claim("w1")
    assert job_fail(job=claimed, worker="w1", code="generation_failed", message="CUDA error")
    assert used(alice) == 0
    assert kinds(job) == ["release", "reserve"]


def test_a_cancelled_queued_job_gives_its_image_back(alice: Person) -> None:
    job = submit(alice)
    response = alice.client().post(f"/api/v1/generations/{job.id}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert used(alice) == 0
    assert kinds(job) == ["release", "reserve"]
    again = alice.client().post(f"/api/v1/generations/{job.id}/cancel")
    assert again.status_code == 200
    assert used(alice) == 0


def test_a_duplicated_task_message_charges_once(alice: Person) -> None:
    job = submit(alice)
    [first] = claim("w1")
    assert first.pk == job.pk
    assert claim("w2") == []  # the duplicate message finds nothing queued
    image = GeneratedImage(png=b"\x89PNG...", width=64, height=64, seed=job.seed)
    assert job_complete(job=first, worker="w1", images=[image])
    assert not job_complete(job=first, worker="w1", images=[image])
    assert used(alice) == 1
    assert kinds(job) == ["capture", "reserve"]
    assert job.images.count() == 1


def test_a_job_is_settled_once_whatever_is_called_again(alice: Person) -> None:
    job = submit(alice)
    assert quota_capture(job=job)
    assert not quota_capture(job=job)
    assert not quota_release(job=job)
    assert used(alice) == 1
    assert kinds(job) == ["capture", "reserve"]
