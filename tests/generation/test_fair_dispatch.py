from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from billing.selectors import plan_for
from generation.models import Job
from generation.queue import job_claim_batch, job_stamp, queue_index_add
from generation.services import job_complete
from tests.conftest import Person, make_person

pytestmark = pytest.mark.django_db

LANES = ["priority", "standard", "free"]


def queue_jobs(person: Person, count: int, *, age: float = 0) -> list[Job]:
    """Queue jobs as job_submit does (stamped by the fair queue), without the HTTP round trips."""
    plan = plan_for(person.workspace)
    created = timezone.now() - timedelta(seconds=age)
    jobs = []
    for n in range(count):
        job = Job(
            workspace=person.workspace, model="demo", prompt=f"job {n}", width=64, height=64,
            steps=4, guidance=3.0, seed=n, lane=plan.lane,
            dispatch_weight=settings.LANE_WEIGHTS[plan.lane], max_in_flight=plan.max_jobs_in_flight,
            created_at=created + timedelta(microseconds=n),
        )  # fmt: skip
        job_stamp(job)
        job.save(force_insert=True)
        jobs.append(job)
    queue_index_add(jobs)
    return jobs


def run_next() -> Job:
    """Claim the next job and finish it at once, as a worker would."""
    [job] = job_claim_batch(worker="w", lanes=LANES, max_images=1)
    assert job_complete(job=job, worker="w", images=[])
    return job


def test_a_flooding_workspace_delays_others_by_at_most_its_fair_share(alice: Person) -> None:
    queue_jobs(alice, 200, age=60)  # alice queued 200 jobs a minute ago
    others = [make_person(f"other{i}@example.com") for i in range(3)]
    for person in others:
        queue_jobs(person, 2)  # then three others arrive with two jobs each
    order = [run_next().workspace_id for _ in range(12)]
    # Round robin: while the others wait, alice gets one turn in four, like each of them.
    for round_ in (order[0:4], order[4:8]):
        assert sorted(map(str, round_)) == sorted(
            str(w.pk) for w in [alice.workspace, *(p.workspace for p in others)]
        )
    assert set(order[8:]) == {alice.workspace.pk}  # then her backlog runs


def test_a_workspace_runs_no_more_jobs_at_once_than_its_plan_allows(alice: Person) -> None:
    queue_jobs(alice, 5)
    batch = job_claim_batch(worker="w", lanes=LANES, max_images=8)
    assert len(batch) == 1  # the free plan's one job in flight
    assert job_claim_batch(worker="w2", lanes=LANES, max_images=8) == []
    pat = make_person("pat@example.com", plan="pro")
    queue_jobs(pat, 10)
    assert len(job_claim_batch(worker="w3", lanes=LANES, max_images=8)) == 4  # pro: 4


def test_paid_jobs_go_first_but_a_paid_flood_does_not_starve_the_free_tier(alice: Person) -> None:
    pat = make_person("pat@example.com", plan="pro")
    queue_jobs(alice, 1, age=30)
    queue_jobs(pat, 20)
    order = [run_next().workspace_id for _ in range(12)]
    assert order[0] == pat.workspace.pk  # a paid job goes before an older free one
    # The flood gets the priority lane's 8 turns for the free workspace's one.
    assert order.index(alice.workspace.pk) == 7


def test_a_new_free_workspace_waits_behind_at_most_a_flood_s_share() -> None:
    from generation.queue import images_ahead

    pat = make_person("pat@example.com", plan="pro")
    queue_jobs(pat, 100)
    assert images_ahead(lane="free") == 8  # not the 100 the flood queued
    assert images_ahead(lane="priority") == 1  # a new paid workspace shares the first turn


def test_a_job_held_back_by_the_in_flight_cap_is_woken_when_the_running_one_ends(
    alice: Person, monkeypatch: pytest.MonkeyPatch
) -> None:
    from generation import services

    sent: list[str] = []
    monkeypatch.setattr(services, "_enqueue", lambda job: sent.append(str(job.pk)))
    first, second = queue_jobs(alice, 2)
    [running] = job_claim_batch(worker="w", lanes=LANES, max_images=8)
    assert running.pk == first.pk
    # A second worker takes the other ticket but may not run alice's second job yet.
    assert job_claim_batch(worker="w2", lanes=LANES, max_images=8) == []
    Job.objects.filter(pk=first.pk).update(status=Job.Status.SUCCEEDED)
    assert services.jobs_wake_waiting(workspace_ids=[alice.workspace.pk]) == 1
    assert sent == [str(second.pk)]
    [woken] = job_claim_batch(worker="w2", lanes=LANES, max_images=8)
    assert woken.pk == second.pk
