"""Suspending a workspace stops its work at once: queued jobs are cancelled and refunded,
a running one stops at its next step, no claim runs its jobs, and its images are not served
until it is unsuspended."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile
from django.test import Client

from accounts.services import workspace_suspend
from billing.models import QuotaCounter, QuotaLedgerEntry
from generation import pipeline, worker
from generation.models import Image, Job
from generation.queue import job_claim_batch
from generation.services import job_progress
from operations.models import AuditEntry
from operations.services import operator_workspace_suspend, operator_workspace_unsuspend
from tests.conftest import Person, make_person, small_job

pytestmark = pytest.mark.django_db

LANES = ["priority", "standard", "free"]


@pytest.fixture
def pat() -> Person:
    return make_person("pat@example.com", plan="pro")


def made_image(person: Person) -> Image:
    job = Job.objects.create(
        workspace=person.workspace, model="m", prompt="p", width=64, height=64, steps=1,
        guidance=1.0, seed=1, status=Job.Status.SUCCEEDED,
    )  # fmt: skip
    image = Image(job=job, workspace=person.workspace, index=0, width=64, height=64, seed=1)
    image.file.save("0.png", ContentFile(b"\x89PNG pat's picture"), save=True)
    return image


def test_suspending_cancels_and_refunds_everything_and_nothing_runs_afterwards(
    pat: Person, admin_user: object
) -> None:
    for _ in range(3):
        response = pat.client().post("/api/v1/generations", small_job(), format="json")
        assert response.status_code == 202, response.content
    [running] = job_claim_batch(worker="w1", lanes=LANES, max_images=1)
    assert QuotaCounter.objects.get(workspace=pat.workspace).used == 3

    assert operator_workspace_suspend(actor=admin_user, workspace=pat.workspace)

    assert set(Job.objects.values_list("status", flat=True)) == {Job.Status.CANCELLED}
    assert QuotaCounter.objects.get(workspace=pat.workspace).used == 0
    assert QuotaLedgerEntry.objects.filter(kind="release").count() == 3
    # The worker rendering the running job stops at its next step.
    assert job_progress(job_ids=[running.pk], worker="w1", progress=0.5) == 0
    assert job_claim_batch(worker="w2", lanes=LANES, max_images=8) == []
    entry = AuditEntry.objects.get(action="workspace.suspend")
    assert entry.detail == "3 jobs cancelled and refunded"


def test_a_job_admitted_as_the_workspace_was_suspended_is_cancelled_not_run(
    pat: Person, admin_user: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    response = pat.client().post("/api/v1/generations", small_job(), format="json")
    job = Job.objects.get(pk=response.json()["id"])
    # Suspended by another path between admission and the claim (no cancellation ran).
    workspace_suspend(workspace=pat.workspace)

    def must_not_render(*args: object, **kwargs: object) -> list[object]:
        raise AssertionError("a suspended workspace's job was rendered")

    monkeypatch.setattr(pipeline, "run_batch", must_not_render)
    worker.ticket_run(str(job.pk))
    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED
    assert QuotaCounter.objects.get(workspace=pat.workspace).used == 0


def test_images_are_not_served_while_suspended_and_come_back_after(
    pat: Person, admin_user: object
) -> None:
    image = made_image(pat)
    url = f"/api/v1/images/{image.pk}"
    assert pat.client().get(url).status_code == 200
    operator_workspace_suspend(actor=admin_user, workspace=pat.workspace)
    assert pat.client().get(url).status_code == 404
    web = Client()
    web.force_login(pat.user)
    assert web.get(f"/images/{image.pk}").status_code == 404
    operator_workspace_unsuspend(actor=admin_user, workspace=pat.workspace)
    assert pat.client().get(url).status_code == 200
