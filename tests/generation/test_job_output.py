"""JobOutput and ImageOutput write their fields out (DRF rebuilds a ModelSerializer's fields
for every instance, a tenth of a submission's CPU): they must render exactly what DRF's own
ModelSerializer.to_representation renders from the same declared fields, in the same order,
for jobs in every state a client can see."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.test import RequestFactory
from django.utils import timezone
from rest_framework import serializers

from generation.api import ImageOutput, JobOutput
from generation.models import Image, Job, Lane
from generation.selectors import job_queue_place, job_with_images, jobs_for
from tests.conftest import Person, make_person, small_job

pytestmark = pytest.mark.django_db


@pytest.fixture
def pro() -> Person:
    return make_person("output@example.com", plan="pro")


def _submitted(person: Person, **params: object) -> Job:
    response = person.client().post("/api/v1/generations", small_job(**params), format="json")
    assert response.status_code == 202, response.content
    return Job.objects.get(pk=response.json()["id"])


def _drf(serializer: serializers.ModelSerializer, instance: object) -> dict[str, object]:
    """What DRF renders from the serializer's fields, bypassing the written-out method."""
    return dict(serializers.ModelSerializer.to_representation(serializer, instance))


def _states(person: Person) -> list[Job]:
    queued = _submitted(person, seed=7, webhook_events_filter=[])
    running = _submitted(person, guidance=2, negative_prompt="blur")
    Job.objects.filter(pk=running.pk).update(
        status=Job.Status.RUNNING, started_at=timezone.now(), progress=0.25
    )
    done = _submitted(person, num_images=2, output_format="webp", output_compression=80)
    now = timezone.now()
    Job.objects.filter(pk=done.pk).update(
        status=Job.Status.SUCCEEDED, started_at=now - timedelta(seconds=3), finished_at=now,
        progress=1.0,
    )  # fmt: skip
    for index in range(2):
        image = Image(job=done, workspace=person.workspace, index=index, width=64, height=64,
                      seed=done.seed + index)  # fmt: skip
        image.file.save(f"{index}.webp", ContentFile(b"RIFF picture"), save=True)
    failed = _submitted(person)
    Job.objects.filter(pk=failed.pk).update(
        status=Job.Status.FAILED, error_code="render_failed", error_message="It broke.",
        finished_at=now, lane=Lane.STANDARD,
    )  # fmt: skip
    edit = _submitted(person)
    Job.objects.filter(pk=edit.pk).update(kind=Job.Kind.EDIT, strength=0.35)
    return [Job.objects.get(pk=job.pk) for job in (queued, running, done, failed, edit)]


def test_a_job_renders_as_drf_would_render_it_in_every_state(pro: Person) -> None:
    request = RequestFactory().get("/api/v1/generations", HTTP_HOST="testserver")
    jobs = _states(pro)
    assert {job.status for job in jobs} == {"queued", "running", "succeeded", "failed"}
    for job in jobs:
        context = {"request": request}
        written = JobOutput(job, context=context).data
        drf = _drf(JobOutput(context={"request": request}), job)
        assert list(written) == list(drf) == JobOutput.Meta.fields
        assert written == drf, job.status
        assert [type(value) for value in written.values()] == [
            type(value) for value in drf.values()
        ]
        for image in job.images.all():
            assert ImageOutput(image, context=context).data == _drf(
                ImageOutput(context=context), image
            )
    queued = JobOutput(jobs[0], context={"request": request}).data
    assert queued["queue_position"] == job_queue_place(jobs[0]).position >= 1
    assert queued["estimated_start_seconds"] is not None
    done = JobOutput(jobs[2], context={"request": request}).data
    assert [image["url"] for image in done["images"]] == [
        f"http://testserver/api/v1/images/{image.id}" for image in jobs[2].images.order_by("index")
    ]
    assert done["finished_at"].endswith("Z")


def test_a_list_and_a_webhook_render_alike(pro: Person) -> None:
    jobs = _states(pro)
    request = RequestFactory().get("/", HTTP_HOST="testserver")
    listed = JobOutput(jobs, many=True, context={"request": request}).data
    assert [dict(item) for item in listed] == [
        _drf(JobOutput(context={"request": request}), job) for job in jobs
    ]
    signed = {"request": None, "image_url": lambda image: f"https://cdn.example/{image.id}"}
    body = JobOutput(jobs[2], context=signed).data
    assert body == _drf(JobOutput(context=signed), jobs[2])
    assert body["images"][0]["url"].startswith("https://cdn.example/")


def test_a_polled_job_is_read_as_jobs_for_reads_it_in_every_state(
    pro: Person, django_assert_num_queries: Any
) -> None:
    """GET /api/v1/generations/<id> reads the job and its images with two written-out
    statements (job_with_images); the job, its images and their order, and what the API
    renders of them, are what jobs_for's ORM query and prefetch give."""
    request = RequestFactory().get("/", HTTP_HOST="testserver")
    context = {"request": request, "queue_places": {}}
    for job in _states(pro):
        with django_assert_num_queries(2):
            polled = job_with_images(pro.workspace, job.pk)
        assert polled is not None
        reference = jobs_for(pro.workspace).get(pk=job.pk)
        for field in Job._meta.concrete_fields:
            assert getattr(polled, field.attname) == getattr(reference, field.attname), field
        with django_assert_num_queries(0):
            images = list(polled.images.all())
        assert [(i.pk, i.index, i.file.name) for i in images] == [
            (i.pk, i.index, i.file.name) for i in reference.images.all()
        ]
        assert JobOutput(polled, context=context).data == JobOutput(reference, context=context).data
        response = pro.client().get(f"/api/v1/generations/{job.pk}")
        assert response.status_code == 200
        assert response.json() == {
            **JobOutput(reference, context={"request": response.wsgi_request}).data,
            **{k: response.json()[k] for k in ("queue_position", "estimated_start_seconds")},
        }
    other = make_person("other-output@example.com")
    assert job_with_images(other.workspace, job.pk) is None  # another workspace's job
    response = other.client().get(f"/api/v1/generations/{job.pk}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
