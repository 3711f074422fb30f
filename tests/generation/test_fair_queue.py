"""The fair queue's tags and flows (generation/queue.py): weighted shares, caps that do not
block others, and an order that cancellations and requeues keep."""

from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from accounts.models import Workspace
from generation import queue, services
from generation.maintenance import jobs_sweep
from generation.models import Job, QueueFlow
from generation.queue import (
    TAG_SCALE,
    ahead_of_new,
    job_claim_batch,
    job_queue_place,
    job_stamp,
    queue_index_add,
    queue_index_reconcile,
    queue_length,
)
from generation.services import job_cancel, job_complete, job_fail

pytestmark = pytest.mark.django_db

LANES = ["priority", "standard", "free"]
CAPS = {"priority": 4, "standard": 2, "free": 1}


def workspace(name: str) -> Workspace:
    return Workspace.objects.create(name=name)


def admit(space: Workspace, lane: str, count: int = 1, *, cap: int | None = None) -> list[Job]:
    """Queue jobs as job_submit does: stamped, inserted, entered in the place index."""
    jobs = []
    for n in range(count):
        job = Job(
            workspace=space, model="demo", prompt=f"job {n}", width=64, height=64, steps=4,
            guidance=3.0, seed=n, lane=lane, dispatch_weight=settings.LANE_WEIGHTS[lane],
            max_in_flight=cap or CAPS[lane],
        )  # fmt: skip
        job_stamp(job)
        job.save(force_insert=True)
        jobs.append(job)
    queue_index_add(jobs)
    return jobs


def run_next(lanes: list[str] = LANES) -> Job:
    """Claim the next job and finish it at once, as a worker would."""
    [job] = job_claim_batch(worker="w", lanes=lanes, max_images=1)
    assert job_complete(job=job, worker="w", images=[])
    return job


def assert_flows_match_their_jobs() -> None:
    """Invariant 2: every flow says what its jobs say."""
    for flow in QueueFlow.objects.all():
        jobs = Job.objects.filter(workspace_id=flow.workspace_id)
        queued = jobs.filter(status=Job.Status.QUEUED).order_by("finish_tag", "queue_seq")
        head = queued.first()
        assert flow.running == jobs.filter(status=Job.Status.RUNNING).count()
        if head is None:
            assert flow.head_finish is None and flow.head_seq is None
        else:
            assert (flow.head_finish, flow.head_seq) == (head.finish_tag, head.queue_seq)
            assert (flow.head_lane, flow.max_in_flight) == (head.lane, head.max_in_flight)
            assert flow.last_finish >= queued.last().finish_tag


def test_backlogged_lanes_share_the_workers_eight_to_three_to_one() -> None:
    paid, standard, free = workspace("paid"), workspace("standard"), workspace("free")
    admit(paid, "priority", 100)
    admit(standard, "standard", 40)
    admit(free, "free", 20)
    served = Counter(run_next().workspace_id for _ in range(120))
    assert [served[paid.pk], served[standard.pk], served[free.pk]] == [80, 30, 10]


def test_a_paid_job_goes_before_a_queue_of_free_ones_admitted_earlier() -> None:
    for n in range(20):
        admit(workspace(f"free {n}"), "free")
    [paid] = admit(workspace("paid"), "priority")
    assert job_queue_place(paid).position == 1
    assert run_next().pk == paid.pk


def test_a_paid_job_runs_next_among_backlogged_free_workspaces() -> None:
    """Forty free workspaces keep a backlog and have been served for a while: the next jobs
    of ten of them start at V (1) and finish at 2, the other thirty's finish at 3. A paid
    job of a workspace with nothing queued starts at V too and finishes an eighth of a turn
    later, before all of them, so it runs next. (Had V been the finish-tag front, 2, it would
    finish at 2 1/8, behind those ten.)"""
    for n in range(40):
        admit(workspace(f"free {n}"), "free", 4)
    for _ in range(70):  # each served once, thirty of them twice
        run_next()
    [paid] = admit(workspace("paid"), "priority")
    assert paid.finish_tag == TAG_SCALE + TAG_SCALE // 8
    assert job_queue_place(paid).position == 1
    assert run_next().pk == paid.pk
    assert_flows_match_their_jobs()


def test_a_paid_flood_gets_eight_turns_for_each_free_workspace_s_one() -> None:
    flood, alice, bob = workspace("flood"), workspace("alice"), workspace("bob")
    admit(flood, "priority", 100)
    admit(alice, "free", 5)
    admit(bob, "free", 5)
    order = [run_next().workspace_id for _ in range(30)]
    for start in (0, 10, 20):
        turns = Counter(order[start : start + 10])
        assert turns == {flood.pk: 8, alice.pk: 1, bob.pk: 1}


def test_a_workspace_at_its_cap_does_not_hold_back_others() -> None:
    alice, bob = workspace("alice"), workspace("bob")
    admit(alice, "free", 50)
    [running] = job_claim_batch(worker="w", lanes=LANES, max_images=8)
    assert running.workspace_id == alice.pk
    assert QueueFlow.objects.get(workspace=alice).running == 1
    [bobs] = admit(bob, "free")  # his tag comes after alice's next job: she is at her cap
    assert job_claim_batch(worker="w2", lanes=LANES, max_images=8) == [bobs]
    assert job_claim_batch(worker="w3", lanes=LANES, max_images=8) == []
    assert job_complete(job=running, worker="w", images=[])
    assert run_next().workspace_id == alice.pk  # room again: her next job runs
    assert_flows_match_their_jobs()


def test_cancelling_a_job_keeps_the_order_of_the_others() -> None:
    alice, bob = workspace("alice"), workspace("bob")
    a1, a2, a3 = admit(alice, "free", 3)
    b1, b2, b3 = admit(bob, "free", 3)
    assert job_queue_place(b2).position == 4  # a1, b1, a2 before it
    job_cancel(job=a2)
    assert job_queue_place(b2).position == 3
    assert job_queue_place(a3).position == 4
    assert [run_next().pk for _ in range(5)] == [a1.pk, b1.pk, b2.pk, a3.pk, b3.pk]
    assert_flows_match_their_jobs()


def test_a_workspace_that_cancels_its_backlog_comes_back_at_the_queue_s_time() -> None:
    alice, bob = workspace("alice"), workspace("bob")
    for job in admit(alice, "free", 10):
        job_cancel(job=job)
    b1, b2, b3 = admit(bob, "free", 3)
    [fresh] = admit(alice, "free")  # not behind the ten it cancelled
    assert [run_next().pk for _ in range(4)] == [b1.pk, fresh.pk, b2.pk, b3.pk]


def test_a_requeued_job_keeps_its_tag_and_runs_next() -> None:
    alice, bob = workspace("alice"), workspace("bob")
    a1, _ = admit(alice, "free", 2)
    admit(bob, "free", 2)
    [claimed] = job_claim_batch(worker="w1", lanes=LANES, max_images=1)
    assert claimed.pk == a1.pk
    later = timezone.now() + timedelta(seconds=settings.JOB_HEARTBEAT_TIMEOUT + 1)
    assert jobs_sweep(at=later).requeued == 1
    assert job_queue_place(a1).position == 1
    assert run_next().pk == a1.pk
    assert_flows_match_their_jobs()


def test_a_new_job_waits_behind_what_its_tag_comes_after() -> None:
    flood, alice = workspace("flood"), workspace("alice")
    admit(flood, "priority", 100)
    admit(alice, "free", 3)
    # A new free workspace's tag is 1: the flood's first 8 and alice's first job come first.
    assert ahead_of_new(lane="free") == (9, 9)
    # Alice's next job comes after her three: tag 4, behind 32 of the flood's jobs.
    assert ahead_of_new(lane="free", workspace=alice) == (35, 35)
    assert queue_length() == 103


def test_flows_stay_derived_from_their_jobs_through_any_sequence_of_changes() -> None:
    chooser = random.Random(21)
    spaces = [workspace(f"w{n}") for n in range(6)]
    for _ in range(300):
        action = chooser.random()
        if action < 0.4:
            admit(chooser.choice(spaces), chooser.choice(LANES), chooser.randint(1, 3))
        elif action < 0.65:
            job_claim_batch(worker="w", lanes=LANES, max_images=chooser.randint(1, 8))
        elif action < 0.8:
            for job in Job.objects.filter(status=Job.Status.RUNNING)[:3]:
                job_complete(job=job, worker="w", images=[])
        elif action < 0.9:
            job = Job.objects.filter(status__in=Job.ACTIVE_STATUSES).order_by("?").first()
            if job is not None:
                job_cancel(job=job)
        else:
            job = Job.objects.filter(status=Job.Status.RUNNING).first()
            if job is not None:
                job_fail(job=job, worker="w", code="boom", message="it broke")
        for flow in QueueFlow.objects.all():  # never past a cap
            assert flow.running <= max(CAPS.values())
    assert_flows_match_their_jobs()
    queued = Job.objects.filter(status=Job.Status.QUEUED)
    assert queue_length() == queued.count()
    # The place index agrees with the order claims use.
    ordered = list(queued.order_by("finish_tag", "queue_seq"))
    for position, job in enumerate(ordered[:20], start=1):
        assert job_queue_place(job).position == position


def best_candidates(lanes: list[str], limit: int) -> list[object]:
    """What a claim may take first, by brute force: each workspace's queued jobs in tag
    order, as many as its room under the cap, up to the first one in a lane not served;
    merged in fair order, the first `limit`."""
    allowed = []
    for flow in QueueFlow.objects.filter(head_finish__isnull=False):
        room = flow.max_in_flight - flow.running
        if flow.head_lane not in lanes or room <= 0:
            continue
        queued = Job.objects.filter(workspace_id=flow.workspace_id, status=Job.Status.QUEUED)
        for job in list(queued.order_by("finish_tag", "queue_seq"))[:room]:
            if job.lane not in lanes:
                break
            allowed.append(job)
    allowed.sort(key=lambda job: (job.finish_tag, job.queue_seq))
    return [job.id for job in allowed[:limit]]


def test_claim_candidates_are_the_best_jobs_that_may_run_by_brute_force() -> None:
    """Fewer flows than the claim reads and more; workspaces at their cap, with backlogs
    deeper than the claim, with jobs in two lanes (a plan changed while they waited); workers
    serving some lanes. The candidates are exactly the best ones, in order."""
    chooser = random.Random(7)
    spaces = [workspace(f"w{n}") for n in range(40)]
    for space in spaces:
        lane = chooser.choice(LANES)
        admit(space, lane, chooser.randint(0, 12), cap=chooser.randint(1, 4))
        if chooser.random() < 0.2:  # a plan change: later jobs in another lane
            admit(space, chooser.choice(LANES), chooser.randint(1, 3), cap=2)
    for _ in range(6):
        job_claim_batch(worker="w", lanes=LANES, max_images=chooser.randint(1, 8))
    assert QueueFlow.objects.filter(head_finish__isnull=False, running__gt=0).exists()
    for lanes in (LANES, ["priority"], ["standard", "free"], ["free", "priority"]):
        for limit in (1, 5, 12, 32, 200):
            found = [c.id for c in queue.fair_candidates(lanes=lanes, limit=limit)]
            assert found == best_candidates(lanes, limit), (lanes, limit)


def test_the_place_index_is_put_right_from_the_database() -> None:
    alice = workspace("alice")
    a1, _, a3 = admit(alice, "free", 3)
    client = queue.redis_client()
    client.delete(queue.JOBS_KEY, queue.IMAGES_KEY)  # Redis lost its data
    # A phantom: an entry whose job is not queued (a commit that failed after writing it).
    queue.queue_index_add([Job(queue_seq=a1.queue_seq - 1, finish_tag=0, num_images=1)])
    assert queue_index_reconcile() == (6, 2)  # three jobs and their images back; one gone
    assert queue_length() == 3
    assert job_queue_place(a3).position == 3
    client.zrem(queue.JOBS_KEY, queue.index_member(a1.queue_seq))  # a failed claim's leftover
    assert job_queue_place(a1).position == 1  # reading a place puts it back
    assert queue_length() == 3


def test_a_change_made_by_hand_is_put_right_when_the_workspace_is_woken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[object] = []
    monkeypatch.setattr(services, "_enqueue", lambda job: sent.append(job.pk))
    alice = workspace("alice")
    first, second = admit(alice, "free", 2)
    job_claim_batch(worker="w", lanes=LANES, max_images=8)
    Job.objects.filter(pk=first.pk).update(status=Job.Status.SUCCEEDED)  # not via a service
    assert job_claim_batch(worker="w2", lanes=LANES, max_images=8) == []  # the flow is behind
    assert services.jobs_wake_waiting(workspace_ids=[alice.pk]) == 1
    assert sent == [second.pk]
    assert [job.pk for job in job_claim_batch(worker="w2", lanes=LANES, max_images=8)] == [
        second.pk
    ]
