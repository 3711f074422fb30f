from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine

from tests.conftest import Person, small_job

pytestmark = pytest.mark.django_db

NOON = datetime(2026, 3, 2, 12, 0, 0, tzinfo=UTC)


def test_every_generation_response_says_where_the_client_stands(alice: Person) -> None:
    client = alice.client()
    with time_machine.travel(NOON, tick=False):
        submitted = client.post("/api/v1/generations", small_job(), format="json")
        listed = client.get("/api/v1/generations")
        detail = client.get(f"/api/v1/generations/{submitted.json()['id']}")
    for response in (submitted, listed, detail):
        assert response["RateLimit-Policy"] == '"minute";q=5;w=60'
        assert response["X-RateLimit-Limit-Images"] == "3"
        assert response["X-RateLimit-Remaining-Images"] == "2"
        assert response["X-RateLimit-Reset-Images"] == "12h0m0s"
    assert submitted["RateLimit"].startswith('"minute";r=4;t=')
    assert listed["RateLimit"].startswith('"minute";r=4;t=')  # reading does not count


def test_usage_reports_plan_limit_used_remaining_reset_and_history(alice: Person) -> None:
    with time_machine.travel(NOON, tick=False):
        alice.client().post("/api/v1/generations", small_job(), format="json")
        body = alice.client().get("/api/v1/usage").json()
    assert body["plan"] == {"slug": "free", "name": "Free"}
    assert (body["limit"], body["used"], body["remaining"]) == (3, 1, 2)
    assert body["reset_at"] == "2026-03-03T00:00:00Z"
    assert body["history"] == [{"window_start": "2026-03-02T00:00:00Z", "used": 1}]


def test_a_refusal_shows_the_limits_admission_read_without_reading_them_again(
    alice: Person, django_assert_num_queries: Any
) -> None:
    """A spent free tier's 429 is the busiest answer of the day: its headers carry the rate
    and quota that admission read before refusing, with no second read of either."""
    client = alice.client()
    with time_machine.travel(NOON, tick=False):
        for _ in range(3):
            assert client.post("/api/v1/generations", small_job(), format="json").status_code == 202
        with django_assert_num_queries(2):  # the plan in force and the quota: nothing again
            refused = client.post("/api/v1/generations", small_job(), format="json")
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "quota_exceeded"
    assert refused["X-RateLimit-Limit-Images"] == "3"
    assert refused["X-RateLimit-Remaining-Images"] == "0"
    assert refused["X-RateLimit-Reset-Images"] == "12h0m0s"
    assert refused["RateLimit"].startswith('"minute";r=1;t=')  # the fourth of five this minute
