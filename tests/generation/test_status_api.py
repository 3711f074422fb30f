"""GET /api/v1/status is public: it must cost the same however many people poll it."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.conftest import Person, small_job

pytestmark = pytest.mark.django_db


def test_the_status_is_worked_out_once_for_every_caller_within_its_window(
    alice: Person, django_assert_num_queries: object, settings: object
) -> None:
    settings.STATUS_CACHE_SECONDS = 60  # type: ignore[attr-defined]
    first = Client().get("/api/v1/status")
    assert first.status_code == 200
    alice.client().post("/api/v1/generations", small_job(), format="json")
    with django_assert_num_queries(0):  # type: ignore[operator]
        again = Client(REMOTE_ADDR="10.0.0.2").get("/api/v1/status")
    assert again.json() == first.json()  # the same snapshot, not a new queue-wide query


def test_one_address_polling_too_fast_is_told_when_to_come_back(settings: object) -> None:
    settings.STATUS_RATE = "3/m"  # type: ignore[attr-defined]
    client = Client()
    assert [client.get("/api/v1/status").status_code for _ in range(3)] == [200, 200, 200]
    refused = client.get("/api/v1/status")
    assert refused.status_code == 429
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert int(refused["Retry-After"]) > 0
    assert Client(REMOTE_ADDR="10.0.0.9").get("/api/v1/status").status_code == 200
