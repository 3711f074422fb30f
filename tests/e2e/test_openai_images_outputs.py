"""Output formats and masked edits through the `openai` package, a live server, a real worker
and the demo model: WebP and JPEG carry the provenance, a masked edit keeps every pixel
outside its mask, and bad masks are refused before anything is charged."""

from __future__ import annotations

import base64
import io
import json
import random

import openai
import pytest
import requests
from PIL import Image as PILImage

from billing.models import QuotaCounter
from generation.models import Job
from tests.conftest import Person, make_person
from tests.e2e.conftest import WorkerProcess
from tests.e2e.test_openai_client import client_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PROMPT = "a red circle on a gray background"
MASKED = (16, 16, 48, 48)  # the box the mask opens for repainting


@pytest.fixture
def dana(db: None) -> Person:
    return make_person("dana@example.com")


def xmp_fields(picture: PILImage.Image) -> dict[str, str]:
    """The atelier:* attributes of the picture's XMP packet."""
    xmp = picture.info["xmp"]
    text = xmp.decode() if isinstance(xmp, bytes) else xmp
    fields = {}
    for part in text.split("atelier:")[1:]:
        name, _, rest = part.partition("=")
        if rest[:1] in ("'", '"'):
            fields[name.strip()] = rest[1:].split(rest[0], 1)[0]
    return fields


def assert_provenance(picture: PILImage.Image, job: Job) -> None:
    xmp = xmp_fields(picture)
    assert xmp["ai_generated"] == "true"
    assert xmp["model"] == job.model
    assert xmp["seed"] == str(job.seed)
    assert "trainedAlgorithmicMedia" in picture.info["xmp"].decode()
    exif = json.loads(picture.getexif()[0x010E])
    assert (exif["ai-generated"], exif["model"], exif["seed"]) == ("true", job.model, str(job.seed))
    assert json.loads(exif["parameters"])["steps"] == job.steps


def test_images_generate_as_webp_with_compression_carries_its_provenance(
    live_server: object, celery_worker: WorkerProcess, dana: Person
) -> None:
    with client_for(live_server, dana.key) as client:
        result = client.images.generate(
            prompt=PROMPT,
            size="64x64",
            output_format="webp",
            output_compression=50,
            response_format="b64_json",
        )
    assert (result.output_format, result.size) == ("webp", "64x64")
    assert result.usage.output_tokens == 1
    picture = PILImage.open(io.BytesIO(base64.b64decode(result.data[0].b64_json)))
    assert (picture.format, picture.size) == ("WEBP", (64, 64))
    job = Job.objects.get(workspace=dana.workspace)
    assert (job.output_format, job.output_compression) == ("webp", 50)
    assert_provenance(picture, job)
    assert job.images.get().file.name.endswith(".webp")


def test_jpeg_downloads_say_so_and_carry_the_provenance(
    live_server: object, celery_worker: WorkerProcess, dana: Person
) -> None:
    with client_for(live_server, dana.key) as client:
        [linked] = client.images.generate(prompt=PROMPT, size="64x64", output_format="jpeg").data
    job = Job.objects.get(workspace=dana.workspace)
    image = job.images.get()
    signed = requests.get(linked.url, timeout=10)
    native = requests.get(
        f"{live_server.url}/api/v1/images/{image.id}",  # type: ignore[attr-defined]
        headers={"Authorization": f"Bearer {dana.key}"},
        timeout=10,
    )
    for download in (signed, native):
        assert download.status_code == 200
        assert download.headers["Content-Type"] == "image/jpeg"
        picture = PILImage.open(io.BytesIO(download.content))
        assert picture.format == "JPEG"
        assert_provenance(picture, job)


def noise_photo(size: tuple[int, int] = (96, 64)) -> PILImage.Image:
    """A photo where every pixel differs, so that a kept pixel cannot be kept by chance."""
    rng = random.Random(7)
    photo = PILImage.new("RGB", size)
    photo.putdata([tuple(rng.randrange(256) for _ in range(3)) for _ in range(size[0] * size[1])])
    return photo


def png_bytes(picture: PILImage.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def openai_mask(size: tuple[int, int] = (96, 64)) -> bytes:
    """OpenAI's mask: opaque where the photo is kept, transparent (alpha 0) where repainted."""
    mask = PILImage.new("RGBA", size, (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), MASKED)
    return png_bytes(mask)


def test_a_masked_edit_repaints_inside_the_mask_and_keeps_every_pixel_outside(
    live_server: object, celery_worker: WorkerProcess, dana: Person
) -> None:
    photo = noise_photo()
    with client_for(live_server, dana.key) as client:
        result = client.images.edit(
            image=("photo.png", png_bytes(photo), "image/png"),
            mask=("mask.png", openai_mask(), "image/png"),
            prompt="a blue circle on a white background",
            response_format="b64_json",
            extra_body={"strength": 1.0, "seed": 3},
        )
    edited = PILImage.open(io.BytesIO(base64.b64decode(result.data[0].b64_json))).convert("RGB")
    assert edited.size == photo.size
    inside, changed_inside = 0, 0
    for y in range(photo.height):
        for x in range(photo.width):
            masked = MASKED[0] <= x < MASKED[2] and MASKED[1] <= y < MASKED[3]
            if masked:
                inside += 1
                changed_inside += edited.getpixel((x, y)) != photo.getpixel((x, y))
            else:
                assert edited.getpixel((x, y)) == photo.getpixel((x, y)), (x, y)
    assert changed_inside > inside * 0.9
    job = Job.objects.get(workspace=dana.workspace)
    assert (job.status, bool(job.mask_image)) == (Job.Status.SUCCEEDED, True)


@pytest.mark.parametrize(
    "mask,message",
    [
        (openai_mask((64, 64)), "must be the size of the image"),
        (png_bytes(PILImage.new("RGB", (96, 64))), "no alpha channel"),
    ],
)
def test_a_bad_mask_is_a_400_that_costs_nothing(
    live_server: object, celery_worker: WorkerProcess, dana: Person, mask: bytes, message: str
) -> None:
    with (
        client_for(live_server, dana.key) as client,
        pytest.raises(openai.BadRequestError) as refused,
    ):
        client.images.edit(
            image=("photo.png", png_bytes(noise_photo()), "image/png"),
            mask=("mask.png", mask, "image/png"),
            prompt="a blue circle on a white background",
        )
    assert refused.value.param == "mask"
    assert message in refused.value.message
    assert not Job.objects.exists()
    assert not QuotaCounter.objects.filter(workspace=dana.workspace, used__gt=0).exists()
