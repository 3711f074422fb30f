"""One job that fails to render does not fail the other jobs of its batch (other
workspaces' included), and nobody reads the server's exception text."""

from __future__ import annotations

import pytest
from PIL import Image as PILImage

from billing.models import QuotaCounter
from generation import pipeline, worker
from generation.models import Job
from generation.queue import job_claim_batch
from tests.conftest import make_person, small_job

pytestmark = pytest.mark.django_db


def test_a_failing_job_fails_alone_and_the_rest_of_its_batch_succeeds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    people = [make_person(f"p{i}@example.com", plan="pro") for i in range(3)]
    prompts = ["a red circle", "a poisoned prompt", "a blue square"]
    for person, prompt in zip(people, prompts, strict=True):
        response = person.client().post(
            "/api/v1/generations", small_job(prompt=prompt), format="json"
        )
        assert response.status_code == 202, response.content

    def run_batch(spec: object, items: list, **kwargs: object) -> list[PILImage.Image]:
        if any(item.prompt == "a poisoned prompt" for item in items):
            raise RuntimeError("CUDA error at /opt/atelier/secret/kernels.cu:42")
        return [PILImage.new("RGB", (64, 64), "gray") for _ in items]

    monkeypatch.setattr(pipeline, "run_batch", run_batch)
    batch = job_claim_batch(worker="w1", lanes=["priority", "standard", "free"], max_images=8)
    assert len(batch) == 3  # one batch: the failure happens with all three in it
    worker.run_batch(batch, worker="w1")

    statuses = {job.prompt: job for job in Job.objects.all()}
    assert statuses["a red circle"].status == Job.Status.SUCCEEDED
    assert statuses["a blue square"].status == Job.Status.SUCCEEDED
    failed = statuses["a poisoned prompt"]
    assert failed.status == Job.Status.FAILED
    assert failed.error_code == "generation_failed"
    assert "/opt/atelier" not in failed.error_message
    assert failed.error_message == worker.FAILURES["generation_failed"]
    used = {c.workspace_id: c.used for c in QuotaCounter.objects.all()}
    assert used[failed.workspace_id] == 0  # refunded; the others were charged
    assert sorted(used.values()) == [0, 1, 1]
