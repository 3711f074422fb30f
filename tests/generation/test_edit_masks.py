"""Masks on the native edit API: OpenAI's definition (alpha 0 is repainted), the image's size,
refused with a 400 that costs nothing otherwise; masked and unmasked edits never share a
batch."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.utils import timezone
from PIL import Image as PILImage

from billing.models import Plan, QuotaCounter
from generation.maintenance import source_photos_expire
from generation.models import Job
from generation.queue import job_claim_batch
from generation.services import job_cancel
from tests.conftest import Person

pytestmark = pytest.mark.django_db


def png(picture: PILImage.Image, name: str) -> io.BytesIO:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    buffer.seek(0)
    buffer.name = name
    return buffer


def photo() -> io.BytesIO:
    return png(PILImage.new("RGB", (96, 64), (200, 30, 30)), "photo.png")


def mask(size: tuple[int, int] = (96, 64), mode: str = "RGBA") -> io.BytesIO:
    picture = PILImage.new(mode, size, (0, 0, 0, 255) if mode == "RGBA" else 0)
    if mode == "RGBA":
        picture.paste((0, 0, 0, 0), (16, 16, 48, 48))
    return png(picture, "mask.png")


def edit(person: Person, **fields: object) -> object:
    body = {"prompt": "a blue circle on a gray background", "image": photo(), **fields}
    return person.client().post("/api/v1/edits", body, format="multipart")


def test_a_masked_edit_stores_where_to_repaint(alice: Person) -> None:
    response = edit(alice, mask=mask())
    assert response.status_code == 202, response.content  # type: ignore[attr-defined]
    job = Job.objects.get(workspace=alice.workspace)
    with job.mask_image.open("rb") as file:
        stored = PILImage.open(file)
        stored.load()
    assert stored.size == (96, 64)
    assert stored.getpixel((16, 16)) == 255 and stored.getpixel((47, 47)) == 255
    assert stored.getpixel((15, 16)) == 0 and stored.getpixel((48, 20)) == 0


BAD_MASKS = {
    "wrong size": (lambda: mask((64, 64)), "must be the size of the image"),
    "no alpha": (lambda: mask(mode="RGB"), "no alpha channel"),
    "a JPEG": (lambda: jpeg_mask(), "not a PNG"),
}


def jpeg_mask() -> io.BytesIO:
    buffer = io.BytesIO()
    PILImage.new("RGB", (96, 64)).save(buffer, format="JPEG")
    buffer.seek(0)
    buffer.name = "mask.png"
    return buffer


@pytest.mark.parametrize("make,reason", BAD_MASKS.values(), ids=BAD_MASKS.keys())
def test_a_bad_mask_is_a_400_that_costs_nothing(alice: Person, make: object, reason: str) -> None:
    response = edit(alice, mask=make())  # type: ignore[operator]
    assert response.status_code == 400  # type: ignore[attr-defined]
    error = response.json()["error"]  # type: ignore[attr-defined]
    assert error["param"] == "mask" and reason in error["message"]
    assert not Job.objects.exists()
    assert not QuotaCounter.objects.filter(workspace=alice.workspace, used__gt=0).exists()


def test_masked_and_unmasked_edits_never_share_a_batch(alice: Person) -> None:
    Plan.objects.filter(slug="free").update(max_jobs_in_flight=4)
    assert edit(alice, mask=mask(), seed=1).status_code == 202  # type: ignore[attr-defined]
    assert edit(alice, seed=2).status_code == 202  # type: ignore[attr-defined]
    assert edit(alice, mask=mask(), seed=3).status_code == 202  # type: ignore[attr-defined]
    lanes = ["free", "standard", "priority"]
    first = job_claim_batch(worker="w1", lanes=lanes, max_images=8)
    second = job_claim_batch(worker="w1", lanes=lanes, max_images=8)
    assert sorted(job.seed for job in first) == [1, 3]
    assert [job.seed for job in second] == [2]


def test_a_mask_goes_with_its_photo_when_an_unused_edit_expires(
    alice: Person, settings: object
) -> None:
    edit(alice, mask=mask())
    job = Job.objects.get(workspace=alice.workspace)
    job_cancel(job=job)
    names = (job.source_image.name, job.mask_image.name)
    assert all(default_storage.exists(name) for name in names)
    later = timezone.now() + timedelta(days=settings.SOURCE_PHOTO_RETENTION_DAYS + 1)  # type: ignore[attr-defined]
    assert source_photos_expire(at=later) == 1
    assert not any(default_storage.exists(name) for name in names)
    job.refresh_from_db()
    assert (job.source_image.name, job.mask_image.name) == ("", "")
