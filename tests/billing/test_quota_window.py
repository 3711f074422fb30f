from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from billing.models import Plan, QuotaOverride
from tests.conftest import Person, small_job

pytestmark = pytest.mark.django_db

LATE = datetime(2026, 3, 2, 23, 59, 0, tzinfo=UTC)
MIDNIGHT = datetime(2026, 3, 3, 0, 0, 0, tzinfo=UTC)


def post(person: Person) -> object:
    return person.client().post("/api/v1/generations", small_job(), format="json")


def test_the_fourth_image_of_the_day_is_refused_until_midnight_utc(alice: Person) -> None:
    with time_machine.travel(LATE, tick=False) as clock:
        assert [post(alice).status_code for _ in range(3)] == [202, 202, 202]
        refused = post(alice)
        assert refused.status_code == 429
        error = refused.json()["error"]
        assert error["code"] == "quota_exceeded"
        assert error["reset_at"] == MIDNIGHT.isoformat()
        assert "2026-03-03 00:00 UTC" in error["message"]
        assert refused["Retry-After"] == "60"

        clock.move_to(MIDNIGHT - timedelta(seconds=1))
        assert post(alice).status_code == 429
        clock.move_to(MIDNIGHT + timedelta(minutes=2))  # past the minute's rate window too
        accepted = post(alice)
        assert accepted.status_code == 202
        assert accepted["X-RateLimit-Remaining-Images"] == "2"


def test_a_plan_can_use_a_shorter_window(alice: Person) -> None:
    Plan.objects.filter(slug="free").update(window_hours=1, daily_images=1)
    with time_machine.travel(datetime(2026, 3, 2, 10, 30, tzinfo=UTC), tick=False) as clock:
        assert post(alice).status_code == 202
        refused = post(alice)
        assert refused.json()["error"]["reset_at"] == "2026-03-02T11:00:00+00:00"
        clock.move_to(datetime(2026, 3, 2, 11, 0, 1, tzinfo=UTC))
        assert post(alice).status_code == 202


def test_an_override_changes_one_workspaces_limit_until_its_date(
    alice: Person, bob: Person
) -> None:
    with time_machine.travel(LATE - timedelta(hours=2), tick=False) as clock:
        QuotaOverride.objects.create(
            workspace=alice.workspace, daily_images=5, until=LATE - timedelta(hours=1)
        )
        statuses = [post(alice).status_code for _ in range(6)]
        assert statuses[:5] == [202] * 5 and statuses[5] == 429
        assert [post(bob).status_code for _ in range(4)] == [202, 202, 202, 429]
        clock.move_to(MIDNIGHT + timedelta(hours=1, minutes=2))
        # Expired: back to the plan's 3.
        assert [post(alice).status_code for _ in range(4)] == [202, 202, 202, 429]


def test_a_smaller_override_takes_effect_at_once(alice: Person) -> None:
    QuotaOverride.objects.create(workspace=alice.workspace, daily_images=1, reason="abuse")
    assert post(alice).status_code == 202
    assert post(alice).status_code == 429
