"""An edit's uploaded photo is not kept for ever: it goes with the job's last image, or,
for an edit that made none, after SOURCE_PHOTO_RETENTION_DAYS."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from billing.models import Plan
from generation.maintenance import images_expire, source_photos_expire
from generation.models import Job
from generation.queue import job_claim_batch
from generation.services import GeneratedImage, job_complete, job_fail
from tests.conftest import Person, small_job

pytestmark = pytest.mark.django_db


def edit_job(person: Person) -> Job:
    response = person.client().post("/api/v1/generations", small_job(), format="json")
    job = Job.objects.get(pk=response.json()["id"])
    job.kind, job.strength = Job.Kind.EDIT, 0.5
    job.source_image.save("photo.png", ContentFile(b"\x89PNG a photo"), save=True)
    return job


def test_the_photo_of_an_edit_goes_with_its_last_image(alice: Person) -> None:
    job = edit_job(alice)
    [claimed] = job_claim_batch(worker="w1", lanes=["free"], max_images=1)
    assert job_complete(job=claimed, worker="w1", images=[GeneratedImage(b"png", 64, 64, 1)])
    photo = job.source_image.name
    days = Plan.objects.get(slug="free").retention_days
    assert images_expire(at=timezone.now() + timedelta(days=days - 1)) == 0
    assert default_storage.exists(photo)  # kept while the image is
    assert images_expire(at=timezone.now() + timedelta(days=days + 1)) == 1
    assert not default_storage.exists(photo)
    job.refresh_from_db()
    assert not job.source_image


def test_the_photo_of_a_failed_edit_is_kept_for_a_retry_then_deleted(
    alice: Person, settings: object
) -> None:
    job = edit_job(alice)
    [claimed] = job_claim_batch(worker="w1", lanes=["free"], max_images=1)
    job_fail(job=claimed, worker="w1", code="generation_failed", message="no")
    photo = job.source_image.name
    days = settings.SOURCE_PHOTO_RETENTION_DAYS  # type: ignore[attr-defined]
    assert source_photos_expire(at=timezone.now() + timedelta(days=days - 1)) == 0
    assert default_storage.exists(photo)
    assert source_photos_expire(at=timezone.now() + timedelta(days=days + 1)) == 1
    assert not default_storage.exists(photo)
