from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from billing.selectors import plan_for
from generation.models import Job
from generation.services import job_claim_batch, lane_to_serve
from tests.conftest import Person, make_person

pytestmark = pytest.mark.django_db

LANES = ["priority", "standard", "free"]


def queue_jobs(person: Person, count: int, *, age: float = 0) -> list[Job]:
    """Queue jobs as job_submit does, without the HTTP round trips."""
    plan = plan_for(person.workspace)
    created = timezone.now() - timedelta(seconds=age)
    return Job.objects.bulk_create(
        Job(
            workspace=person.workspace, model="demo", prompt=f"job {n}", width=64, height=64,
            steps=4, guidance=3.0, seed=n, lane=plan.lane,
            dispatch_weight=plan.max_jobs_in_flight, max_in_flight=plan.max_jobs_in_flight,
            created_at=created + timedelta(microseconds=n),
        )
        for n in range(count)
    )  # fmt: skip


def run_next() -> Job:
    """Claim the next job and finish it at once, as a worker would."""
    [job] = job_claim_batch(worker="w", lanes=LANES, max_images=1)
    Job.objects.filter(pk=job.pk).update(status=Job.Status.SUCCEEDED)
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


def test_the_priority_lane_goes_first_but_the_free_lane_never_starves(alice: Person) -> None:
    pat = make_person("pat@example.com", plan="pro")
    queue_jobs(alice, 1, age=5)
    queue_jobs(pat, 1, age=1)
    assert lane_to_serve(lanes=LANES) == "priority"  # 2 s x 8 beats 6 s x 1
    Job.objects.filter(lane="free").update(created_at=timezone.now() - timedelta(seconds=60))
    assert lane_to_serve(lanes=LANES) == "free"  # 61 s x 1 beats 2 s x 8
