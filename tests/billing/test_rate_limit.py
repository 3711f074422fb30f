from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from billing.models import Plan, QuotaCounter
from tests.conftest import Person, small_job

pytestmark = pytest.mark.django_db

START = datetime(2026, 3, 2, 10, 0, 5, tzinfo=UTC)


def test_the_sixth_request_in_a_minute_on_free_is_429_with_a_correct_retry_after(
    alice: Person,
) -> None:
    Plan.objects.filter(slug="free").update(daily_images=100)
    client = alice.client()
    with time_machine.travel(START, tick=False) as clock:
        for n in range(5):
            response = client.post("/api/v1/generations", small_job(), format="json")
            assert response.status_code == 202, response.content
            assert response["RateLimit"].startswith(f'"minute";r={4 - n};')
        refused = client.post("/api/v1/generations", small_job(), format="json")
        assert refused.status_code == 429
        error = refused.json()["error"]
        assert error["code"] == "rate_limit_exceeded"
        assert error["type"] == "rate_limit_error"
        retry_after = int(refused["Retry-After"])
        assert 1 <= retry_after <= 60
        assert refused["RateLimit"] == f'"minute";r=0;t={retry_after}'

        clock.shift(timedelta(seconds=retry_after - 1))
        assert client.post("/api/v1/generations", small_job(), format="json").status_code == 429
        clock.shift(timedelta(seconds=1))
        assert client.post("/api/v1/generations", small_job(), format="json").status_code == 202

    # Rate-limited requests cost no images: 5 + 1 admitted.
    assert QuotaCounter.objects.get(workspace=alice.workspace).used == 6


def test_rate_limits_are_per_workspace(alice: Person, bob: Person) -> None:
    Plan.objects.filter(slug="free").update(daily_images=100)
    with time_machine.travel(START, tick=False):
        for _ in range(5):
            alice.client().post("/api/v1/generations", small_job(), format="json")
        assert (
            alice.client().post("/api/v1/generations", small_job(), format="json").status_code
            == 429
        )
        assert (
            bob.client().post("/api/v1/generations", small_job(), format="json").status_code == 202
        )


def test_the_rate_comes_from_the_plan(alice: Person) -> None:
    Plan.objects.filter(slug="free").update(daily_images=100, requests_per_minute=2)
    with time_machine.travel(START, tick=False):
        statuses = [
            alice.client().post("/api/v1/generations", small_job(), format="json").status_code
            for _ in range(3)
        ]
    assert statuses == [202, 202, 429]
