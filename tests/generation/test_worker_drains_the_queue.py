"""One ticket keeps its worker taking batches while there is work (the GPU does not wait
for a message between batches), for at most DRAIN_SECONDS.

Transactional: the pipelined worker claims and settles on threads of its own, with
connections of their own, which see only what is committed."""

from __future__ import annotations

import pytest
from django.test import override_settings

from generation import tasks, worker
from generation.models import Job
from tests.conftest import make_person, small_job

pytestmark = pytest.mark.django_db(transaction=True)


def submit_jobs(count: int) -> list[str]:
    client = make_person("drain@example.com", plan="pro").client()
    return [
        client.post("/api/v1/generations", small_job(steps=1, seed=n), format="json").json()["id"]
        for n in range(count)
    ]


@override_settings(GENERATION_BATCH_SIZE=2)
def test_one_ticket_runs_batch_after_batch_until_the_queue_is_empty() -> None:
    ids = submit_jobs(5)
    tasks.run_job.run(ids[0])
    assert set(Job.objects.values_list("status", flat=True)) == {"succeeded"}
    # Three batches (2 + 2 + 1), in the order the jobs came.
    starts = list(Job.objects.order_by("created_at").values_list("started_at", flat=True))
    assert len(set(starts)) == 3 and starts == sorted(starts)


@override_settings(GENERATION_BATCH_SIZE=2)
def test_a_ticket_stops_taking_batches_after_drain_seconds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(worker, "DRAIN_SECONDS", 0.0)
    ids = submit_jobs(5)
    tasks.run_job.run(ids[0])
    statuses = dict(Job.objects.values_list("id", "status"))
    assert sorted(statuses.values()) == ["queued", "queued", "queued", "succeeded", "succeeded"]
    tasks.run_job.run(ids[4])  # the next ticket goes on
    assert Job.objects.filter(status="succeeded").count() == 4
