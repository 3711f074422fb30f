"""Output formats on the native API: png (default), jpeg and webp with a quality; each carries
the provenance, and the stored file and every download follow the job's format."""

from __future__ import annotations

import io
import json

import pytest
from django.test import Client
from PIL import Image as PILImage

from generation.images import encode_image
from generation.models import Image, Job
from generation.queue import job_claim_batch
from generation.services import GeneratedImage, job_complete
from tests.conftest import Person, small_job
from tests.web.conftest import signed_in

pytestmark = pytest.mark.django_db

PROVENANCE = {"model": "atelier-demo", "seed": "42", "parameters": {"steps": 4}, "job": "j-1"}


def gradient() -> PILImage.Image:
    picture = PILImage.new("RGB", (64, 64))
    picture.putdata([(x * 4, y * 4, (x + y) * 2) for y in range(64) for x in range(64)])
    return picture


def test_png_carries_the_provenance_in_text_chunks() -> None:
    picture = PILImage.open(io.BytesIO(encode_image(gradient(), provenance=PROVENANCE)))
    assert picture.format == "PNG"
    assert (picture.text["ai-generated"], picture.text["model"], picture.text["seed"]) == (
        "true",
        "atelier-demo",
        "42",
    )
    assert json.loads(picture.text["parameters"]) == {"steps": 4}


@pytest.mark.parametrize("output_format,pillow", [("jpeg", "JPEG"), ("webp", "WEBP")])
def test_jpeg_and_webp_carry_the_provenance_in_xmp_and_exif(
    output_format: str, pillow: str
) -> None:
    data = encode_image(gradient(), output_format=output_format, provenance=PROVENANCE)
    picture = PILImage.open(io.BytesIO(data))
    assert picture.format == pillow
    xmp = picture.info["xmp"].decode()
    assert 'atelier:ai_generated="true"' in xmp and 'atelier:seed="42"' in xmp
    assert "digitalsourcetype/trainedAlgorithmicMedia" in xmp
    exif = json.loads(picture.getexif()[0x010E])
    assert (exif["ai-generated"], exif["model"], exif["job"]) == ("true", "atelier-demo", "j-1")


@pytest.mark.parametrize("output_format", ["jpeg", "webp"])
def test_output_compression_is_the_encoders_quality(output_format: str) -> None:
    sizes = [
        len(encode_image(gradient(), output_format=output_format, quality=q, provenance={}))
        for q in (10, 100)
    ]
    assert sizes[0] < sizes[1]


def test_the_native_api_takes_output_format_and_compression(alice: Person) -> None:
    body = small_job(output_format="webp", output_compression=40)
    response = alice.client().post("/api/v1/generations", body, format="json")
    assert response.status_code == 202, response.content
    assert (response.json()["output_format"], response.json()["output_compression"]) == (
        "webp",
        40,
    )
    job = Job.objects.get(workspace=alice.workspace)
    assert (job.output_format, job.output_compression) == ("webp", 40)


@pytest.mark.parametrize(
    "fields,param",
    [
        ({"output_format": "gif"}, "output_format"),
        ({"output_compression": 101}, "output_compression"),
    ],
)
def test_a_bad_format_is_a_400_that_creates_nothing(
    alice: Person, fields: dict[str, object], param: str
) -> None:
    response = alice.client().post("/api/v1/generations", small_job(**fields), format="json")
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
    assert not Job.objects.exists()


def settled_image(person: Person, output_format: str) -> Image:
    person.client().post(
        "/api/v1/generations", small_job(output_format=output_format), format="json"
    )
    [claimed] = job_claim_batch(worker="w1", lanes=["free", "standard", "priority"], max_images=4)
    data = encode_image(gradient(), output_format=output_format, provenance=PROVENANCE)
    assert job_complete(job=claimed, worker="w1", images=[GeneratedImage(data, 64, 64, 1)])
    return Image.objects.get(job=claimed)


@pytest.mark.parametrize(
    "output_format,mime,extension",
    [("png", "image/png", "png"), ("jpeg", "image/jpeg", "jpg"), ("webp", "image/webp", "webp")],
)
def test_the_stored_file_and_its_downloads_follow_the_format(
    alice: Person, output_format: str, mime: str, extension: str
) -> None:
    image = settled_image(alice, output_format)
    assert image.file.name.endswith(f"/0.{extension}")
    api = alice.client().get(f"/api/v1/images/{image.id}")
    assert (api.status_code, api["Content-Type"]) == (200, mime)
    web: Client = signed_in(alice)
    download = web.get(f"/images/{image.id}?download=1")
    assert download["Content-Type"] == mime
    assert f'filename="atelier-{image.job_id}-0.{extension}"' in download["Content-Disposition"]
    picture = PILImage.open(io.BytesIO(b"".join(download.streaming_content)))  # type: ignore[attr-defined]
    assert picture.format == {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}[output_format]
