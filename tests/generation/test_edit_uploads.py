from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.files.storage import default_storage
from PIL import Image as PILImage

from billing.models import QuotaCounter
from generation.models import Job
from tests.conftest import Person, make_person

pytestmark = pytest.mark.django_db


def picture(fmt: str = "PNG", size: tuple[int, int] = (96, 64), **save: object) -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", size, (200, 30, 30)).save(buffer, format=fmt, **save)
    return buffer.getvalue()


def upload(data: bytes, name: str = "photo.png") -> io.BytesIO:
    handle = io.BytesIO(data)
    handle.name = name
    return handle


def png_claiming(width: int, height: int) -> bytes:
    """A small PNG whose header claims a huge size: a decompression bomb."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def post_edit(person: Person, data: bytes, name: str = "photo.png", **fields: object) -> object:
    body = {"prompt": "a blue circle on a gray background", "image": upload(data, name), **fields}
    return person.client().post("/api/v1/edits", body, format="multipart")


BAD_UPLOADS = {
    "truncated PNG": (picture()[:-40], "photo.png", "truncated"),
    "text file named .png": (b"hello, I am not a picture" * 10, "photo.png", "not a PNG"),
    "GIF": (picture("GIF"), "photo.gif", "not a PNG"),
    "BMP named .jpg": (picture("BMP"), "photo.jpg", "not a PNG"),
    "decompression bomb": (png_claiming(30_000, 30_000), "bomb.png", "pixels"),
    "too many pixels": (png_claiming(5000, 4000), "big.png", "pixels"),
}


@pytest.mark.parametrize("data,name,reason", BAD_UPLOADS.values(), ids=BAD_UPLOADS.keys())
def test_each_bad_upload_is_a_400_that_creates_nothing(
    alice: Person, data: bytes, name: str, reason: str
) -> None:
    response = post_edit(alice, data, name)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["param"] == "image"
    assert reason in error["message"]
    assert not Job.objects.exists()
    assert not QuotaCounter.objects.filter(used__gt=0).exists()


def test_an_oversized_file_is_refused(alice: Person, settings: object) -> None:
    settings.UPLOAD_MAX_BYTES = 1_000  # type: ignore[attr-defined]
    response = post_edit(alice, picture(size=(200, 200), compress_level=0))
    assert response.status_code == 400
    assert "larger than" in response.json()["error"]["message"]
    assert not Job.objects.exists()


def test_a_missing_image_is_refused(alice: Person) -> None:
    response = alice.client().post("/api/v1/edits", {"prompt": "a blue circle"}, format="multipart")
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "image"


def test_a_good_photo_is_stored_without_exif_or_gps_and_fitted_to_the_plan(alice: Person) -> None:
    exif = PILImage.Exif()
    exif[0x010F] = "CameraMaker"  # Make
    exif[0x8825] = {2: (48.0, 51.0, 24.0), 4: (2.0, 21.0, 7.0)}  # GPS latitude, longitude
    data = picture("JPEG", size=(1600, 1200), exif=exif)
    assert PILImage.open(io.BytesIO(data)).getexif()

    response = post_edit(alice, data, "photo.jpg", strength=0.4)
    assert response.status_code == 202, response.content
    job = Job.objects.get()
    assert (job.kind, job.strength) == (Job.Kind.EDIT, 0.4)
    assert (job.width, job.height) == (512, 384)  # the free plan's 512, aspect kept
    with default_storage.open(job.source_image.name) as handle:
        stored = PILImage.open(io.BytesIO(handle.read()))
        assert stored.format == "PNG"
        assert not stored.getexif()
        assert "exif" not in stored.info


def test_an_edit_is_held_to_the_plan_like_a_generation(alice: Person) -> None:
    response = post_edit(alice, picture(), width=1024, height=1024)
    assert response.status_code == 400 and response.json()["error"]["param"] == "width"
    response = post_edit(alice, picture(), strength=1.5)
    assert response.status_code == 400 and response.json()["error"]["param"] == "strength"
    assert not Job.objects.exists()


def stored_sources() -> set[str]:
    root = Path(django_settings.MEDIA_ROOT) / "sources"
    return {str(path) for path in root.rglob("*") if path.is_file()}


def test_a_refused_edit_leaves_no_file_behind(alice: Person) -> None:
    for _ in range(3):
        assert post_edit(alice, picture()).status_code == 202
    before = stored_sources()
    assert len(before) >= 1
    refused = post_edit(alice, picture(size=(88, 64)))
    assert refused.status_code == 429
    assert stored_sources() == before


def test_paid_plans_edit_bigger_photos() -> None:
    pat = make_person("pat@example.com", plan="pro")
    response = post_edit(pat, picture(size=(1600, 1200)))
    assert response.status_code == 202
    assert (response.json()["width"], response.json()["height"]) == (1024, 768)
