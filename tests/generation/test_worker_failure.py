from __future__ import annotations

import pytest

from billing.models import QuotaCounter, QuotaLedgerEntry
from generation.models import Job
from generation.tasks import run_job
from generation.worker import FAILURES
from tests.conftest import Person, small_job

pytestmark = pytest.mark.django_db


def test_a_missing_model_folder_fails_the_job_readably_and_refunds_it(
    alice: Person, tmp_path: object
) -> None:
    response = alice.client().post("/api/v1/generations", small_job(), format="json")
    job = Job.objects.get(pk=response.json()["id"])
    Job.objects.filter(pk=job.pk).update(model=f"{tmp_path}/no-such-model")

    run_job.run(str(job.id))  # returns normally: no exception, so no crash or retry loop

    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert job.error_code == "generation_failed"
    # A stable message for the job's owner; the server's paths stay in the operators' log.
    assert job.error_message == FAILURES["generation_failed"]
    assert str(tmp_path) not in job.error_message
    assert QuotaCounter.objects.get(workspace=alice.workspace).used == 0
    kinds = sorted(QuotaLedgerEntry.objects.filter(job=job).values_list("kind", flat=True))
    assert kinds == ["release", "reserve"]

    detail = alice.client().get(f"/api/v1/generations/{job.id}").json()
    assert detail["status"] == "failed" and detail["error_message"]


def test_a_message_for_a_job_that_is_not_queued_does_nothing(alice: Person) -> None:
    response = alice.client().post("/api/v1/generations", small_job(), format="json")
    job = Job.objects.get(pk=response.json()["id"])
    Job.objects.filter(pk=job.pk).update(status=Job.Status.CANCELLED)
    run_job.run(str(job.id))
    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED
    assert job.attempts == 0
