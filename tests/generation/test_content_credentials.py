"""Every image carries C2PA content credentials: a manifest that c2pa-python reads back and
validates against the platform's (here the local test) certificate chain, saying the image
was made by an AI model, which one, on which platform; an edit lists its source photo as
its parent ingredient."""

from __future__ import annotations

import io
import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import c2pa
import pytest
from django.conf import settings
from PIL import Image as PILImage

from generation import provenance, worker
from generation.models import Image, Job
from generation.provenance import (
    TRAINED_ALGORITHMIC_MEDIA,
    ImageClaims,
    SourceImage,
    content_credentials_sign,
    credentials,
)
from generation.queue import job_claim_batch
from tests.conftest import Person, small_job

FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}


def encoded(fmt: str, size: tuple[int, int] = (96, 64), colour: str = "teal") -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", size, colour).save(buffer, format=fmt)
    return buffer.getvalue()


def read_back(data: bytes, mime: str) -> tuple[str, dict[str, Any]]:
    """c2pa-python's own reading: (validation state, active manifest), trusting only the
    test chain's root."""
    credentials()  # makes the test chain when this process has not yet
    root = (Path(settings.C2PA_TEST_CHAIN_DIR) / "root.pem").read_text()
    context = c2pa.Context.from_dict(
        {"trust": {"trust_anchors": root}, "verify": {"remote_manifest_fetch": False}}
    )
    with c2pa.Reader(mime, io.BytesIO(data), context=context) as reader:
        store = json.loads(reader.json())
        return reader.get_validation_state(), store["manifests"][store["active_manifest"]]


def assertion(manifest: dict[str, Any], label: str) -> dict[str, Any]:
    [data] = [a["data"] for a in manifest["assertions"] if a["label"] == label]
    return data


@pytest.mark.parametrize("fmt", FORMATS)
def test_signed_png_jpeg_and_webp_validate_against_the_test_chain(fmt: str) -> None:
    image_id = uuid.uuid4()
    signed = content_credentials_sign(
        encoded(fmt), FORMATS[fmt], claims=ImageClaims(image_id, "atelier-demo")
    )
    state, manifest = read_back(signed, FORMATS[fmt])
    assert state == "Trusted"
    [action] = assertion(manifest, "c2pa.actions.v2")["actions"]
    assert action["action"] == "c2pa.created"
    assert action["digitalSourceType"] == TRAINED_ALGORITHMIC_MEDIA
    assert action["softwareAgent"]["name"] == "atelier-demo"
    assert assertion(manifest, "org.atelier.image") == {
        "platform": "Atelier", "model": "atelier-demo", "image": str(image_id)
    }  # fmt: skip
    assert manifest["signature_info"]["common_name"] == "Test signer"
    with PILImage.open(io.BytesIO(signed)) as image:
        assert image.format == fmt  # still an ordinary image to any viewer
        assert image.size == (96, 64)


def test_each_thread_signs_with_its_own_signer_kept_for_every_image() -> None:
    """A signer is made once per signing thread (it parses the chain and key) and signs each
    image that thread signs; threads signing at once each get a valid manifest."""
    ids = [uuid.uuid4() for _ in range(8)]

    def sign(image_id: uuid.UUID) -> tuple[object, bytes]:
        signed = content_credentials_sign(
            encoded("PNG"), "image/png", claims=ImageClaims(image_id, "atelier-demo")
        )
        return provenance._signer(), signed

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(sign, ids))
    signers = {id(signer) for signer, _ in results}
    assert 1 <= len(signers) <= 2  # one per thread, however many images it signed
    assert provenance._signer() is provenance._signer()
    assert id(provenance._signer()) not in signers  # this thread's own
    for image_id, (_, signed) in zip(ids, results, strict=True):
        state, manifest = read_back(signed, "image/png")
        assert state == "Trusted"
        assert assertion(manifest, "org.atelier.image")["image"] == str(image_id)


def test_a_key_that_is_not_the_certificates_signs_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """c2pa does not read back each manifest it signs: each new signer signs a probe and
    reads it back, and credentials whose manifests do not validate sign no image."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    good = credentials()
    other_key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )  # fmt: skip
    wrong = provenance.Credentials(good.chain, other_key, good.anchors)

    def sign_in_a_new_thread() -> bytes:  # a thread of its own: its own, new signer
        with ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(
                content_credentials_sign,
                encoded("PNG"),
                "image/png",
                claims=ImageClaims(uuid.uuid4(), "atelier-demo"),
            ).result()

    monkeypatch.setattr(provenance, "credentials", lambda: wrong)
    with pytest.raises(provenance.SigningFailed, match="C2PA_SIGNING_KEY"):
        sign_in_a_new_thread()
    monkeypatch.setattr(provenance, "credentials", lambda: good)
    state, _ = read_back(sign_in_a_new_thread(), "image/png")
    assert state == "Trusted"


def test_a_changed_pixel_breaks_the_manifest() -> None:
    signed = content_credentials_sign(
        encoded("JPEG"), "image/jpeg", claims=ImageClaims(uuid.uuid4(), "m")
    )
    tampered = bytearray(signed)
    tampered[-100] ^= 0xFF  # in the compressed picture, after the manifest
    state, _ = read_back(bytes(tampered), "image/jpeg")
    assert state == "Invalid"


def test_an_edits_manifest_lists_its_source_as_parent_ingredient() -> None:
    source = encoded("PNG", colour="orange")
    signed = content_credentials_sign(
        encoded("WEBP"),
        "image/webp",
        claims=ImageClaims(uuid.uuid4(), "atelier-demo", edited=True),
        source=SourceImage(source, "image/png"),
    )
    state, manifest = read_back(signed, "image/webp")
    assert state == "Trusted"
    [ingredient] = manifest["ingredients"]
    assert ingredient["relationship"] == "parentOf"
    assert ingredient["format"] == "image/png"
    actions = [a["action"] for a in assertion(manifest, "c2pa.actions.v2")["actions"]]
    assert "c2pa.edited" in actions


@pytest.mark.django_db
def test_the_workers_images_carry_their_credentials(alice: Person) -> None:
    """The demo model through the worker: a generation and an edit, as stored."""
    response = alice.client().post("/api/v1/generations", small_job(), format="json")
    assert response.status_code == 202, response.content
    # One job at a time: a job left queued when a batch ends would be sent a ticket, which
    # would stay in the broker's queue for later tests.
    worker.run_batch(job_claim_batch(worker="w1", lanes=["free"], max_images=8), worker="w1")
    photo = io.BytesIO(encoded("JPEG", size=(64, 64), colour="orange"))
    photo.name = "photo.jpg"
    response = alice.client().post(
        "/api/v1/edits", {"prompt": "a blue circle", "image": photo}, format="multipart"
    )
    assert response.status_code == 202, response.content
    worker.run_batch(job_claim_batch(worker="w1", lanes=["free"], max_images=8), worker="w1")

    made = {image.job.kind: image for image in Image.objects.select_related("job")}
    assert set(made) == {Job.Kind.TEXT_TO_IMAGE, Job.Kind.EDIT}
    for kind, image in made.items():
        with image.file.open("rb") as handle:
            state, manifest = read_back(handle.read(), "image/png")
        assert state == "Trusted"
        assert assertion(manifest, "org.atelier.image")["image"] == str(image.pk)
        assert assertion(manifest, "org.atelier.image")["model"] == "atelier-demo"  # not a path
        ingredients = manifest.get("ingredients", [])
        if kind == Job.Kind.EDIT:
            assert [i["relationship"] for i in ingredients] == ["parentOf"]
        else:
            assert ingredients == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("output_format", "mime"), [("jpeg", "image/jpeg"), ("webp", "image/webp")]
)
def test_jpeg_and_webp_jobs_are_signed_in_their_format(
    alice: Person, output_format: str, mime: str
) -> None:
    body = small_job(output_format=output_format, output_compression=80)
    assert alice.client().post("/api/v1/generations", body, format="json").status_code == 202
    worker.run_batch(job_claim_batch(worker="w1", lanes=["free"], max_images=8), worker="w1")
    image = Image.objects.get()
    with image.file.open("rb") as handle:
        data = handle.read()
    with PILImage.open(io.BytesIO(data)) as stored:
        assert stored.format == output_format.upper()
    state, manifest = read_back(data, mime)
    assert state == "Trusted"
    assert assertion(manifest, "org.atelier.image")["image"] == str(image.pk)
