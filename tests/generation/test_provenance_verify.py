"""POST /api/v1/provenance/verify: anyone may verify an image; the job it came from shows only
to members of the workspace that owns it; a plain photo reports nothing found; a manifest
signed by anyone else is not taken for this platform's; bad uploads are 400s."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import c2pa
import pytest
from PIL import Image as PILImage
from rest_framework.test import APIClient

from generation import pipeline, worker
from generation.models import Image
from generation.provenance import IMAGE_ASSERTION, TRAINED_ALGORITHMIC_MEDIA, local_chain_ensure
from generation.queue import job_claim_batch
from tests.conftest import Person, make_person
from tests.generation.test_watermark import jpeg, scene, smaller

pytestmark = pytest.mark.django_db

URL = "/api/v1/provenance/verify"


def verify(client: APIClient, data: bytes, name: str = "image.png") -> Any:
    upload = io.BytesIO(data)
    upload.name = name
    return client.post(URL, {"image": upload}, format="multipart")


def encoded(image: PILImage.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


@pytest.fixture
def alices_image(monkeypatch: pytest.MonkeyPatch) -> tuple[Person, Image, bytes]:
    """An image made for alice (a 512 px picture from a faked GPU, so it is watermarked)."""
    alice = make_person("alice@example.com", plan="pro")
    body = {"prompt": "a lighthouse at dusk", "width": 512, "height": 512}
    response = alice.client().post("/api/v1/generations", body, format="json")
    assert response.status_code == 202, response.content
    monkeypatch.setattr(
        pipeline, "run_batch", lambda spec, items, **kw: [scene(512, 512, 7) for _ in items]
    )
    [job] = job_claim_batch(worker="w1", lanes=["priority"], max_images=8)
    worker.run_batch([job], worker="w1")
    image = Image.objects.get(job=job)
    with image.file.open("rb") as handle:
        return alice, image, handle.read()


def test_alice_sees_the_job_her_image_came_from(alices_image: tuple[Person, Image, bytes]) -> None:
    alice, image, data = alices_image
    for client in (alice.client(), alice.session()):
        response = verify(client, data)
        assert response.status_code == 200, response.content
        found = response.json()
        assert found["from_this_platform"] is True
        assert found["c2pa"]["validation_state"] == "Trusted"
        assert found["c2pa"]["from_this_platform"] is True
        assert found["c2pa"]["ai_generated"] is True
        assert found["c2pa"]["digital_source_types"] == [TRAINED_ALGORITHMIC_MEDIA]
        assert found["c2pa"]["model"] == "atelier-demo"
        assert found["c2pa"]["platform"] == "Atelier"
        assert found["watermark"] == {"payload": image.pk.bytes[:6].hex()}
        assert found["job"]["id"] == str(image.job_id)
        assert found["job"]["prompt"] == "a lighthouse at dusk"
        assert found["image"]["id"] == str(image.pk)


def test_bob_and_charlie_learn_only_that_it_came_from_this_platform(
    alices_image: tuple[Person, Image, bytes], bob: Person
) -> None:
    _, image, data = alices_image
    for client in (bob.client(), bob.session(), APIClient()):
        found = verify(client, data).json()
        assert found["from_this_platform"] is True
        assert found["c2pa"]["model"] == "atelier-demo"
        assert found["job"] is None
        assert found["image"] is None
        assert str(image.job_id) not in str(found)
        assert "lighthouse" not in str(found)


def test_a_resaved_and_resized_copy_is_traced_by_its_watermark(
    alices_image: tuple[Person, Image, bytes], bob: Person
) -> None:
    alice, image, data = alices_image
    copy = encoded(smaller(jpeg(PILImage.open(io.BytesIO(data)))), "JPEG", quality=75)
    mine = verify(alice.client(), copy, "copy.jpg").json()
    assert mine["c2pa"] is None  # re-encoding dropped the manifest
    assert mine["watermark"] == {"payload": image.pk.bytes[:6].hex()}
    assert mine["from_this_platform"] is True
    assert mine["job"]["id"] == str(image.job_id)
    theirs = verify(bob.client(), copy, "copy.jpg").json()
    assert theirs["from_this_platform"] is True
    assert theirs["job"] is None and theirs["image"] is None


def test_a_plain_photo_reports_nothing_found(alice: Person) -> None:
    for fmt in ("PNG", "JPEG", "WEBP"):
        found = verify(alice.client(), encoded(scene(640, 480, 9), fmt), f"photo.{fmt}").json()
        assert found == {
            "from_this_platform": False, "c2pa": None, "watermark": None, "image": None, "job": None
        }  # fmt: skip


def test_a_manifest_signed_by_someone_else_is_not_this_platforms(
    alices_image: tuple[Person, Image, bytes], tmp_path: Path
) -> None:
    """Another chain claiming alice's image id in our assertion does not lead to her job."""
    alice, image, _ = alices_image
    other = local_chain_ensure(tmp_path / "other")
    signer = c2pa.Signer.from_info(
        c2pa.C2paSignerInfo(
            b"es256", (other / "chain.pem").read_bytes(), (other / "key.pem").read_bytes(), None
        )
    )
    manifest = {
        "claim_generator_info": [{"name": "Atelier", "version": "1"}],
        "assertions": [
            {"label": IMAGE_ASSERTION, "data": {"platform": "Atelier", "image": str(image.pk)}}
        ],
    }
    forged = io.BytesIO()
    picture = encoded(scene(200, 200, 3), "PNG")  # small: no watermark to find
    context = c2pa.Context.from_dict({"verify": {"verify_after_sign": False}})
    builder = c2pa.Builder(manifest, context=context)
    builder.set_intent(
        c2pa.C2paBuilderIntent.CREATE, c2pa.C2paDigitalSourceType.TRAINED_ALGORITHMIC_MEDIA
    )
    builder.sign(signer, "image/png", io.BytesIO(picture), forged)
    found = verify(alice.client(), forged.getvalue()).json()
    assert found["c2pa"]["validation_state"] != "Trusted"
    assert found["c2pa"]["from_this_platform"] is False
    assert found["from_this_platform"] is False
    assert found["job"] is None


BAD = {
    "text file": b"not a picture at all" * 10,
    "truncated PNG": encoded(scene(64, 64, 1), "PNG")[:-40],
    "GIF": encoded(scene(64, 64, 1), "GIF"),
}


@pytest.mark.parametrize("name", BAD)
def test_a_bad_upload_is_a_400(name: str) -> None:
    response = verify(APIClient(), BAD[name], "image.png")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["param"] == "image"


def test_a_missing_image_is_a_400() -> None:
    response = APIClient().post(URL, {}, format="multipart")
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "image"
