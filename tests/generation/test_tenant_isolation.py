from __future__ import annotations

import pytest
from django.core.files.base import ContentFile
from rest_framework.test import APIClient

from generation.models import Image, Job
from tests.conftest import Person, small_job

pytestmark = pytest.mark.django_db


@pytest.fixture
def alices_job(alice: Person) -> Job:
    response = alice.client().post("/api/v1/generations", small_job(), format="json")
    assert response.status_code == 202
    job = Job.objects.get(pk=response.json()["id"])
    image = Image(job=job, workspace=alice.workspace, index=0, width=64, height=64, seed=job.seed)
    image.file.save("0.png", ContentFile(b"\x89PNG alice's picture"), save=True)
    return job


def test_alice_sees_her_own_job_and_image(alice: Person, alices_job: Job) -> None:
    client = alice.client()
    assert [j["id"] for j in client.get("/api/v1/generations").json()["results"]] == [
        str(alices_job.id)
    ]
    detail = client.get(f"/api/v1/generations/{alices_job.id}").json()
    image_url = detail["images"][0]["url"]
    assert client.get(image_url).status_code == 200


def test_bob_cannot_list_read_cancel_or_download_alices_work(
    alice: Person, bob: Person, alices_job: Job
) -> None:
    client = bob.client()
    image = alices_job.images.get()
    assert client.get("/api/v1/generations").json()["results"] == []
    for response in (
        client.get(f"/api/v1/generations/{alices_job.id}"),
        client.post(f"/api/v1/generations/{alices_job.id}/cancel"),
        client.get(f"/api/v1/images/{image.id}"),
    ):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
    alices_job.refresh_from_db()
    assert alices_job.status == Job.Status.QUEUED


def test_charlie_without_credentials_gets_401_everywhere(
    charlie: APIClient, alices_job: Job
) -> None:
    image = alices_job.images.get()
    for response in (
        charlie.get("/api/v1/generations"),
        charlie.post("/api/v1/generations", small_job(), format="json"),
        charlie.get(f"/api/v1/generations/{alices_job.id}"),
        charlie.post(f"/api/v1/generations/{alices_job.id}/cancel"),
        charlie.get(f"/api/v1/images/{image.id}"),
        charlie.get("/api/v1/usage"),
        charlie.get("/api/v1/keys"),
    ):
        assert response.status_code == 401
        assert response.json()["error"]["type"] == "authentication_error"
        assert response["WWW-Authenticate"].startswith("Bearer")
    assert Job.objects.count() == 1


def test_a_wrong_key_is_refused(charlie: APIClient) -> None:
    charlie.credentials(HTTP_AUTHORIZATION="Bearer atl_000000000000_notakey")
    response = charlie.get("/api/v1/generations")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
