"""The verification page: anyone may upload an image; alice sees the job her image came
from, bob only that it was made here; a bad upload is a 400 that says why."""

from __future__ import annotations

import io

import pytest
from django.test import Client

from generation import worker
from generation.models import Image
from generation.queue import job_claim_batch
from tests.conftest import Person, make_person, small_job

pytestmark = pytest.mark.django_db


def upload(data: bytes, name: str = "image.png") -> io.BytesIO:
    handle = io.BytesIO(data)
    handle.name = name
    return handle


def test_alice_sees_her_job_and_bob_only_the_platform(bob: Person) -> None:
    alice = make_person("alice@example.com", plan="pro")
    response = alice.client().post(
        "/api/v1/generations", small_job(prompt="a quiet harbour"), format="json"
    )
    assert response.status_code == 202
    worker.run_batch(job_claim_batch(worker="w1", lanes=["priority"], max_images=8), worker="w1")
    image = Image.objects.get()
    with image.file.open("rb") as handle:
        data = handle.read()

    pages = {}
    for name, person in (("alice", alice), ("bob", bob), ("charlie", None)):
        browser = Client()
        if person is not None:
            browser.force_login(person.user)
        response = browser.post("/verify/", {"image": upload(data)})
        assert response.status_code == 200
        pages[name] = response.content.decode()
    assert "This image was made on Atelier." in pages["alice"]
    assert f"/jobs/{image.job_id}/" in pages["alice"] and "a quiet harbour" in pages["alice"]
    for name in ("bob", "charlie"):
        assert "This image was made on Atelier." in pages[name]
        assert "valid, signed by this platform" in pages[name]
        assert str(image.job_id) not in pages[name] and "harbour" not in pages[name]


def test_a_bad_upload_says_why() -> None:
    response = Client().post("/verify/", {"image": upload(b"hello, not a picture")})
    assert response.status_code == 400
    assert "The file is not a PNG, JPEG or WebP image." in response.content.decode()
