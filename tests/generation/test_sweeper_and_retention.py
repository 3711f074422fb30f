from __future__ import annotations

from datetime import timedelta

import pytest
import torch
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone
from PIL import Image as PILImage

from billing.models import Plan, QuotaCounter, QuotaLedgerEntry, Subscription
from generation import pipeline, worker
from generation.maintenance import images_expire, jobs_sweep
from generation.models import Image, Job
from generation.queue import job_claim_batch
from generation.services import GeneratedImage, job_complete
from tests.conftest import Person, make_person, small_job

pytestmark = pytest.mark.django_db

ALL_LANES = ["priority", "standard", "free"]


def submit(person: Person, **overrides: object) -> Job:
    response = person.client().post("/api/v1/generations", small_job(**overrides), format="json")
    assert response.status_code == 202, response.content
    return Job.objects.get(pk=response.json()["id"])


def claim(worker: str = "w1", max_images: int = 8) -> list[Job]:
    return job_claim_batch(worker=worker, lanes=ALL_LANES, max_images=max_images)


def kinds(job: Job) -> list[str]:
    return sorted(QuotaLedgerEntry.objects.filter(job=job).values_list("kind", flat=True))


def test_a_job_whose_heartbeat_stopped_is_requeued(alice: Person, settings: object) -> None:
    job = submit(alice)
    claim()
    later = timezone.now() + timedelta(seconds=settings.JOB_HEARTBEAT_TIMEOUT + 1)  # type: ignore[attr-defined]
    assert jobs_sweep(at=timezone.now()).requeued == 0  # still beating
    assert jobs_sweep(at=later).requeued == 1
    job.refresh_from_db()
    assert (job.status, job.worker, job.attempts) == (Job.Status.QUEUED, "", 1)
    assert QuotaCounter.objects.get(workspace=alice.workspace).used == 1
    [again] = claim("w2")
    assert again.pk == job.pk and again.attempts == 2


def test_a_job_retried_too_often_fails_and_is_refunded(alice: Person, settings: object) -> None:
    job = submit(alice)
    later = timezone.now() + timedelta(seconds=settings.JOB_HEARTBEAT_TIMEOUT + 1)  # type: ignore[attr-defined]
    for attempt in range(settings.JOB_MAX_ATTEMPTS):  # type: ignore[attr-defined]
        claim(f"w{attempt}")
        jobs_sweep(at=later)
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED and job.error_code == "worker_lost"
    assert kinds(job) == ["release", "reserve"]
    assert QuotaCounter.objects.get(workspace=alice.workspace).used == 0


def test_a_job_past_its_deadline_fails_and_is_refunded(alice: Person, settings: object) -> None:
    job = submit(alice)
    later = timezone.now() + timedelta(seconds=settings.JOB_DEADLINE + 1)  # type: ignore[attr-defined]
    assert jobs_sweep(at=later).failed == 1
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED and job.error_code == "deadline_exceeded"
    assert QuotaCounter.objects.get(workspace=alice.workspace).used == 0


def test_images_are_kept_as_long_as_the_plan_said_when_they_were_made(alice: Person) -> None:
    job = submit(alice)
    [claimed] = claim()
    png = GeneratedImage(png=b"\x89PNG fake", width=64, height=64, seed=1)
    assert job_complete(job=claimed, worker="w1", images=[png])
    image = Image.objects.get(job=job)
    free_days = Plan.objects.get(slug="free").retention_days
    assert image.expires_at - image.created_at == pytest.approx(
        timedelta(days=free_days), abs=timedelta(seconds=5)
    )
    assert default_storage.exists(image.file.name)

    assert images_expire(at=timezone.now() + timedelta(days=free_days - 1)) == 0
    assert images_expire(at=timezone.now() + timedelta(days=free_days + 1)) == 1
    assert not Image.objects.exists()
    assert not default_storage.exists(image.file.name)


def test_a_downgrade_does_not_shorten_the_life_of_images_already_made() -> None:
    pat = make_person("pat@example.com", plan="pro")
    submit(pat)
    [claimed] = claim()
    job_complete(job=claimed, worker="w1", images=[GeneratedImage(b"png", 64, 64, 1)])
    Subscription.objects.filter(workspace=pat.workspace).delete()  # back on free (7 days)
    assert images_expire(at=timezone.now() + timedelta(days=30)) == 0
    assert Image.objects.count() == 1


def fake_pictures(items: list[object]) -> list[PILImage.Image]:
    return [PILImage.new("RGB", (64, 64), "gray") for _ in items]


def test_an_out_of_memory_error_retries_with_smaller_batches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    people = [make_person(f"p{i}@example.com", plan="pro") for i in range(4)]
    for person in people:
        submit(person)
    calls: list[int] = []

    def run_batch(spec: object, items: list[object], **kwargs: object) -> list[PILImage.Image]:
        calls.append(len(items))
        if len(items) > 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return fake_pictures(items)

    monkeypatch.setattr(pipeline, "run_batch", run_batch)
    batch = claim()
    assert len(batch) == 4
    worker.run_batch(batch, worker="w1")
    assert calls == [4, 2, 1, 1, 2, 1, 1]
    assert set(Job.objects.values_list("status", flat=True)) == {Job.Status.SUCCEEDED}


def test_a_single_job_out_of_memory_fails_and_is_refunded(
    alice: Person, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = submit(alice)

    def run_batch(spec: object, items: list[object], **kwargs: object) -> list[PILImage.Image]:
        raise torch.OutOfMemoryError("CUDA out of memory.")

    monkeypatch.setattr(pipeline, "run_batch", run_batch)
    worker.run_batch(claim(), worker="w1")
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED and "out of memory" in job.error_message
    assert QuotaCounter.objects.get(workspace=alice.workspace).used == 0


def test_a_batch_past_its_time_limit_fails_and_is_refunded(
    alice: Person, monkeypatch: pytest.MonkeyPatch, settings: object
) -> None:
    settings.JOB_TIME_LIMIT_BASE = 0  # type: ignore[attr-defined]
    settings.JOB_TIME_LIMIT_PER_MEGAPIXEL_STEP = 0  # type: ignore[attr-defined]
    job = submit(alice)

    def run_batch(spec: object, items: list[object], *, on_step: object, **kw: object) -> list:
        on_step(1)  # type: ignore[operator]
        return fake_pictures(items)

    monkeypatch.setattr(pipeline, "run_batch", run_batch)
    worker.run_batch(claim(), worker="w1")
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED and job.error_code == "time_limit_exceeded"
    assert kinds(job) == ["release", "reserve"]


def test_an_edit_job_reads_its_source_photo(alice: Person, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    buffer = io.BytesIO()
    PILImage.new("RGB", (64, 64), "red").save(buffer, format="PNG")
    job = submit(alice)
    job.kind, job.strength = Job.Kind.EDIT, 0.5
    job.source_image.save("red.png", ContentFile(buffer.getvalue()), save=True)
    seen: list[object] = []

    def run_batch(spec: pipeline.BatchSpec, items: list, **kwargs: object) -> list:
        seen.extend([spec.strength, items[0].source.getpixel((0, 0))])
        return fake_pictures(items)

    monkeypatch.setattr(pipeline, "run_batch", run_batch)
    worker.run_batch(claim(), worker="w1")
    assert seen == [0.5, (255, 0, 0)]
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED
