"""Fifty truly concurrent submissions, each thread with its own database connection."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connection
from django.db.models import Sum

from billing.models import Plan, QuotaCounter, QuotaLedgerEntry
from generation.models import Job
from tests.conftest import Person, make_person, small_job

pytestmark = pytest.mark.django_db(transaction=True)

CLIENTS = 50


def submit_concurrently(person: Person, body: dict[str, object]) -> list[tuple[int, str]]:
    barrier = threading.Barrier(CLIENTS)
    results: list[tuple[int, str]] = []
    lock = threading.Lock()

    def submit() -> None:
        client = person.client()
        try:
            barrier.wait()
            response = client.post("/api/v1/generations", body, format="json")
            code = response.json().get("error", {}).get("code", "")
            with lock:
                results.append((response.status_code, code))
        finally:
            connection.close()

    threads = [threading.Thread(target=submit) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def assert_ledger_agrees_with_counter(person: Person) -> int:
    counter = QuotaCounter.objects.get(workspace=person.workspace)
    entries = QuotaLedgerEntry.objects.filter(workspace=person.workspace)
    reserved = entries.filter(kind="reserve").aggregate(n=Sum("images"))["n"] or 0
    released = entries.filter(kind="release").aggregate(n=Sum("images"))["n"] or 0
    assert counter.used == reserved - released
    jobs = Job.objects.filter(workspace=person.workspace).aggregate(n=Sum("num_images"))["n"]
    assert counter.used == jobs
    return counter.used


def test_fifty_concurrent_free_submissions_admit_exactly_three(alice: Person) -> None:
    Plan.objects.filter(slug="free").update(requests_per_minute=1000)
    results = submit_concurrently(alice, small_job())
    assert Counter(results) == {(202, ""): 3, (429, "quota_exceeded"): CLIENTS - 3}
    assert Job.objects.filter(workspace=alice.workspace).count() == 3
    assert assert_ledger_agrees_with_counter(alice) == 3


def test_concurrent_multi_image_requests_never_overshoot_a_paid_limit() -> None:
    pat = make_person("pat@example.com", plan="pro")
    Plan.objects.filter(slug="pro").update(daily_images=10, requests_per_minute=1000)
    # Each request asks for 3 images: 3 fit (9), a 4th would make 12 > 10.
    results = submit_concurrently(pat, small_job(num_images=3))
    assert Counter(results) == {(202, ""): 3, (429, "quota_exceeded"): CLIENTS - 3}
    assert assert_ledger_agrees_with_counter(pat) == 9
