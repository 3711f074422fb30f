"""An image is served (GET /api/v1/images/<id>, the web app's image, OpenAI's signed URLs)
after one written-out lookup, image_to_serve, which must read what images_for reads: the
workspace's own images only, and none while the workspace is suspended."""

from __future__ import annotations

import uuid

import pytest
from django.core.files.base import ContentFile

from accounts.services import workspace_suspend, workspace_unsuspend
from generation.models import Image, Job
from generation.selectors import image_to_serve, images_for
from tests.conftest import Person, small_job

pytestmark = pytest.mark.django_db


def an_image(person: Person) -> Image:
    response = person.client().post("/api/v1/generations", small_job(), format="json")
    assert response.status_code == 202, response.content
    job = Job.objects.get(pk=response.json()["id"])
    image = Image(job=job, workspace=person.workspace, index=0, width=64, height=64, seed=1)
    image.file.save("0.png", ContentFile(b"\x89PNG picture"), save=True)
    return image


def test_an_image_is_served_as_images_for_reads_it(alice: Person, bob: Person) -> None:
    image = an_image(alice)
    found = image_to_serve(image.pk, alice.workspace)
    assert found is not None and found == images_for(alice.workspace).get(pk=image.pk)
    for field in Image._meta.concrete_fields:
        assert getattr(found, field.attname) == getattr(image, field.attname), field
    assert found.file.open("rb").read() == b"\x89PNG picture"
    assert image_to_serve(image.pk, bob.workspace) is None  # another workspace's image
    assert not images_for(bob.workspace).filter(pk=image.pk).exists()
    assert image_to_serve(image.pk) == image  # a signed URL names no workspace
    assert image_to_serve(uuid.uuid4(), alice.workspace) is None

    assert alice.client().get(f"/api/v1/images/{image.pk}").status_code == 200
    response = bob.client().get(f"/api/v1/images/{image.pk}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_no_image_is_served_while_its_workspace_is_suspended(alice: Person) -> None:
    image = an_image(alice)
    workspace_suspend(workspace=alice.workspace)
    assert image_to_serve(image.pk, alice.workspace) is None
    assert image_to_serve(image.pk) is None
    assert not images_for(alice.workspace).filter(pk=image.pk).exists()
    workspace_unsuspend(workspace=alice.workspace)
    assert image_to_serve(image.pk, alice.workspace) == image
    assert image_to_serve(image.pk) == image
