"""One ticket keeps its worker taking batches while there is work (the GPU does not wait
for a message between batches), for at most DRAIN_SECONDS.

Transactional: the pipelined worker claims and settles on threads of its own, with
connections of their own, which see only what is committed."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import UUID

import pytest
from django.test import override_settings

from generation import services, tasks, tickets, worker
from generation.models import Job
from generation.queue import redis_client
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


def lane_tickets(lane: str = "priority") -> int:
    """Tickets waiting in the lane's broker queue (pro jobs run in the priority lane, which
    the suite's shared worker does not serve: these stay until the test takes them away)."""
    return tickets.lane_tickets_waiting(lane)


@pytest.fixture
def empty_priority_lane() -> Iterator[None]:
    redis_client().delete(tickets.lane_queue("priority"))
    yield
    redis_client().delete(tickets.lane_queue("priority"))


@override_settings(LANE_TICKETS_MAX=3)
def test_a_busy_lane_holds_a_few_tickets_not_one_per_job(empty_priority_lane: None) -> None:
    ids = submit_jobs(8)
    assert Job.objects.filter(pk__in=ids, status="queued").count() == 8
    assert lane_tickets() == 3  # admission rang while fewer than LANE_TICKETS_MAX waited
    tasks.run_job.run(ids[0])  # a worker takes one: it drains the lane
    assert set(Job.objects.values_list("status", flat=True)) == {"succeeded"}
    assert lane_tickets() == 3  # it stopped with nothing left: no ring


def test_a_ticket_whose_job_already_ran_still_drains_the_lane() -> None:
    ids = submit_jobs(3)
    Job.objects.filter(pk=ids[0]).update(status="cancelled")  # its own job is gone
    tasks.run_job.run(ids[0])  # a doorbell: the others still run
    statuses = dict(Job.objects.values_list("id", "status"))
    assert [statuses[UUID(i)] for i in ids] == ["cancelled", "succeeded", "succeeded"]


@override_settings(GENERATION_BATCH_SIZE=2)
def test_a_ticket_stopped_at_its_deadline_with_work_left_rings_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(worker, "DRAIN_SECONDS", 0.0)
    rung: list[str] = []  # the worker's own rings (settling also wakes a workspace's next job)
    monkeypatch.setattr(worker, "ticket_ring", lambda **ticket: rung.append(ticket["lane"]))
    ids = submit_jobs(3)
    tasks.run_job.run(ids[0])  # one batch of two, then the deadline
    assert Job.objects.filter(status="queued").count() == 1
    assert rung == ["priority"]  # rung for the job left
    tasks.run_job.run(ids[0])  # the next ticket runs it and stops with nothing left
    assert Job.objects.filter(status="succeeded").count() == 3
    assert rung == ["priority"]


@override_settings(GENERATION_BATCH_SIZE=2, WORKER_LANES=["priority", "free"])
def test_the_ring_goes_to_a_lane_with_the_work_left(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker of two lanes stops after a priority batch with only a free job left: it rings
    the free lane, whose workers can run it (a priority-only worker could not)."""
    monkeypatch.setattr(worker, "DRAIN_SECONDS", 0.0)
    rung: list[str] = []
    monkeypatch.setattr(worker, "ticket_ring", lambda **ticket: rung.append(ticket["lane"]))
    # Admission's own rings stay here too: a ticket in the free lane would wake the e2e
    # tests' shared worker, which serves it, and race this test for the free job.
    monkeypatch.setattr(services, "ticket_ring", lambda **ticket: True)
    paid = submit_jobs(2)
    free = make_person("drain-free@example.com").client()
    free_id = free.post("/api/v1/generations", small_job(steps=1), format="json").json()["id"]
    tasks.run_job.run(paid[0])  # the two paid jobs (their tags come first), then the deadline
    statuses = dict(Job.objects.values_list("id", "status"))
    assert [statuses[UUID(i)] for i in [*paid, free_id]] == ["succeeded", "succeeded", "queued"]
    assert rung == ["free"]
