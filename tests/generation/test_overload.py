from __future__ import annotations

import time
from datetime import timedelta

import pytest
import time_machine
from django.test import Client

from billing.models import Plan, QuotaCounter
from billing.switches import operator_switches_update
from generation.models import Job
from generation.queue import throughput_record, worker_alive
from tests.conftest import Person, make_person, small_job

pytestmark = pytest.mark.django_db


def post(person: Person) -> object:
    return person.client().post("/api/v1/generations", small_job(), format="json")


@pytest.fixture
def slow_gpus() -> None:
    """The workers report 100 s per image: one queued image is a 100 s wait."""
    throughput_record(images=1, seconds=100)


def test_a_lane_past_its_wait_limit_refuses_free_jobs_and_accepts_paid_ones(
    alice: Person, bob: Person, slow_gpus: None
) -> None:
    assert post(alice).status_code == 202  # empty queue: admitted
    refused = post(bob)  # 100 s of queue ahead, the free plan waits at most 60 s
    assert refused.status_code == 503
    error = refused.json()["error"]
    assert error["code"] == "overloaded" and error["type"] == "overloaded_error"
    retry_after = int(refused["Retry-After"])
    assert retry_after == error["retry_after"]
    assert 30 <= retry_after <= 100
    assert not Job.objects.filter(workspace=bob.workspace).exists()
    assert not QuotaCounter.objects.filter(workspace=bob.workspace, used__gt=0).exists()

    pat = make_person("pat@example.com", plan="pro")
    assert post(pat).status_code == 202  # the priority lane is empty


def test_a_client_that_waits_its_retry_after_is_admitted_ahead_of_newcomers(
    alice: Person, bob: Person, slow_gpus: None
) -> None:
    carol = make_person("carol@example.com")
    with time_machine.travel(time.time(), tick=False) as clock:
        assert post(alice).status_code == 202
        first = post(bob)
        retry_after = int(first["Retry-After"])
        second = post(bob)  # another of bob's requests gets its own, later place
        assert second.status_code == 503 and int(second["Retry-After"]) > retry_after
        newcomer = post(carol)
        assert newcomer.status_code == 503
        assert int(newcomer["Retry-After"]) > int(second["Retry-After"])  # behind bob

        clock.shift(timedelta(seconds=retry_after))
        assert post(bob).status_code == 202  # back at his place
        assert post(carol).status_code == 503  # not her turn yet
        clock.shift(timedelta(seconds=int(newcomer["Retry-After"]) - retry_after))
        assert post(carol).status_code == 202


def test_no_place_is_kept_past_the_horizon_so_clients_who_gave_up_hold_the_lane_no_longer(
    alice: Person, slow_gpus: None, settings: object
) -> None:
    """Behind one queued image at 100 s an image, refused free workspaces are given places
    100 s apart up to WAITING_ROOM_HORIZON ahead; past it they are told when to try again,
    with no place kept, and the lane's timetable stops there. So once the queue empties, a
    newcomer waits behind the places kept within the horizon, not behind every refusal (it
    was told 2,041 s after twenty refusals when every one was booked)."""
    settings.WAITING_ROOM_HORIZON = 300  # type: ignore[attr-defined]
    with time_machine.travel(time.time(), tick=False):
        queued = post(alice)
        assert queued.status_code == 202
        refusals = [post(make_person(f"p{n}@example.com")) for n in range(20)]
        assert {r.status_code for r in refusals} == {503}
        waits = [int(r["Retry-After"]) for r in refusals]
        assert [round(w, -1) for w in waits[:3]] == [40, 140, 240]  # kept, 100 s apart
        assert all("place is kept" in r.json()["error"]["message"] for r in refusals[:3])
        past = waits[3:]  # the next place would be 340 s ahead: none is booked
        assert len(set(past)) == 1 and 300 < past[0] <= 400
        for refused in refusals[3:]:
            error = refused.json()["error"]
            assert error["code"] == "overloaded" and error["retry_after"] == past[0]
            assert "cannot keep a place" in error["message"]

        alice.client().post(f"/api/v1/generations/{queued.json()['id']}/cancel")
        newcomer = post(make_person("late@example.com"))
        assert newcomer.status_code == 503  # behind the three places kept, and no further
        assert int(newcomer["Retry-After"]) <= 300 + 100


def test_pausing_the_free_tier_takes_effect_without_a_restart(
    alice: Person, admin_client: Client
) -> None:
    operator_switches_update(free_tier_paused=True)
    paused = post(alice)
    assert paused.status_code == 503
    assert paused.json()["error"]["code"] == "free_tier_paused"
    assert int(paused["Retry-After"]) > 0
    assert post(make_person("pat@example.com", plan="pro")).status_code == 202

    response = admin_client.post(
        "/admin/billing/operatorswitches/1/change/",
        {"free_daily_images": "", "max_queued_jobs": "", "banner": ""},
    )
    assert response.status_code == 302, response.content
    assert post(alice).status_code == 202
    assert QuotaCounter.objects.get(workspace=alice.workspace).used == 1


def test_a_temporary_free_quota_lowers_todays_limit(alice: Person) -> None:
    operator_switches_update(free_daily_images=1)
    assert post(alice).status_code == 202
    refused = post(alice)
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "quota_exceeded"
    operator_switches_update(free_daily_images=None)
    assert post(alice).status_code == 202


def test_a_cap_on_queued_jobs_sheds_free_jobs_but_not_paid_ones(alice: Person, bob: Person) -> None:
    operator_switches_update(max_queued_jobs=1)
    assert post(alice).status_code == 202
    assert post(bob).status_code == 503
    assert post(make_person("pat@example.com", plan="pro")).status_code == 202


def test_the_banner_is_returned_by_the_api(alice: Person) -> None:
    operator_switches_update(banner="Launch day: the free tier is slower than usual.")
    response = post(alice)
    assert response["Atelier-Notice"] == "Launch day: the free tier is slower than usual."
    status = Client().get("/api/v1/status").json()
    assert status["banner"] == "Launch day: the free tier is slower than usual."
    assert {lane["lane"] for lane in status["lanes"]} == {"priority", "standard", "free"}


def test_queued_jobs_show_their_position_and_estimated_start(alice: Person, bob: Person) -> None:
    throughput_record(images=1, seconds=4)
    first = post(alice).json()
    second = post(bob).json()
    assert (first["queue_position"], first["estimated_start_seconds"]) == (1, 0)
    assert (second["queue_position"], second["estimated_start_seconds"]) == (2, 4)
    pat = make_person("pat@example.com", plan="pro")
    paid = pat.client().post("/api/v1/generations", small_job(), format="json").json()
    assert paid["queue_position"] == 1  # the priority lane runs first
    refreshed = bob.client().get(f"/api/v1/generations/{second['id']}").json()
    assert refreshed["queue_position"] == 3


def test_a_worker_kept_for_the_priority_lane_is_not_counted_for_free_waits(
    alice: Person, bob: Person
) -> None:
    worker_alive("kept@gpu0", ["priority"])
    worker_alive("shared@gpu1", ["priority", "standard", "free"])
    throughput_record(images=1, seconds=10)
    assert post(alice).status_code == 202
    assert post(bob).status_code == 202
    lanes = {lane["lane"]: lane for lane in Client().get("/api/v1/status").json()["lanes"]}
    # Two free images ahead of a newcomer: one worker makes free images, two make paid ones.
    assert lanes["free"]["estimated_wait_seconds"] == 20
    pat = make_person("pat@example.com", plan="pro")
    paid = pat.client().post("/api/v1/generations", small_job(), format="json").json()
    assert paid["estimated_start_seconds"] == 0  # a priority job goes first, at two workers


def test_a_workspace_s_own_backlog_runs_one_job_a_batch_and_bounds_its_wait(
    alice: Person, bob: Person
) -> None:
    Plan.objects.filter(slug="free").update(daily_images=100, requests_per_minute=100)
    for worker in ("gpu0", "gpu1"):
        worker_alive(worker, ["priority", "standard", "free"])
    throughput_record(images=4, seconds=8)  # 2 s an image, 8 s a batch
    # The free plan runs one job at a time: each of alice's jobs waits a batch for each of
    # hers ahead of it, whatever the two workers could do together.
    estimates = [post(alice).json()["estimated_start_seconds"] for _ in range(8)]
    assert estimates == [0, 8, 16, 24, 32, 40, 48, 56]
    refused = post(alice)  # 64 s behind her own jobs: past the free plan's 60 s
    assert refused.status_code == 503 and int(refused["Retry-After"]) >= 1
    # Another free workspace is not held back by alice's backlog: in fair order only her
    # first job runs before his (one image, at 2 s an image on two workers).
    admitted = post(bob)
    assert admitted.status_code == 202 and admitted.json()["estimated_start_seconds"] == 1


def test_a_slot_in_the_waiting_room_is_kept_for_the_request_it_was_given_to(
    alice: Person, bob: Person, slow_gpus: None
) -> None:
    Plan.objects.filter(slug="free").update(daily_images=100, requests_per_minute=100)
    with time_machine.travel(time.time(), tick=False) as clock:
        assert post(alice).status_code == 202
        refused = post(bob)
        assert refused.status_code == 503
        clock.shift(timedelta(seconds=int(refused["Retry-After"])))
        # Another of bob's requests arrives first, asking for something else: not its slot.
        other = bob.client().post(
            "/api/v1/generations", small_job(prompt="a blue square"), format="json"
        )
        assert other.status_code == 503
        assert post(bob).status_code == 202  # the refused request, back at its slot


def test_under_an_idempotency_key_the_slot_is_kept_for_that_key(
    alice: Person, bob: Person, slow_gpus: None
) -> None:
    Plan.objects.filter(slug="free").update(daily_images=100, requests_per_minute=100)

    def send(key: str) -> object:
        return bob.client().post(
            "/api/v1/generations", small_job(), format="json", HTTP_IDEMPOTENCY_KEY=key
        )

    with time_machine.travel(time.time(), tick=False) as clock:
        assert post(alice).status_code == 202
        refused = send("first")
        assert refused.status_code == 503
        clock.shift(timedelta(seconds=int(refused["Retry-After"])))
        assert send("second").status_code == 503  # the same body, another request
        assert send("first").status_code == 202
