"""One person's free workspaces share one allowance, however many they open, under fifty
truly concurrent submissions (each thread with its own database connection)."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connection
from django.db.models import Sum
from django.test import Client
from rest_framework.test import APIClient

from accounts.keys import api_key_create
from accounts.selectors import workspaces_for
from billing.models import AllowanceCounter, Plan, QuotaCounter, QuotaLedgerEntry
from generation.models import Job
from tests.conftest import Person, small_job

pytestmark = pytest.mark.django_db(transaction=True)

CLIENTS = 50
WORKSPACES = 20


def twenty_free_workspaces_with_keys(person: Person) -> list[str]:
    """The person opens 19 team workspaces on the web page (20 with their personal one),
    all on the free plan, and makes a key in each."""
    browser = Client()
    browser.force_login(person.user)
    for n in range(WORKSPACES - 1):
        assert browser.post("/workspaces/new/", {"name": f"Farm {n}"}).status_code == 302
    keys = [person.key]
    for workspace in workspaces_for(person.user).exclude(pk=person.workspace.pk):
        _, key = api_key_create(workspace=workspace, user=person.user)
        keys.append(key)
    assert len(keys) == WORKSPACES
    return keys


def key_client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def submit_concurrently(keys: list[str]) -> list[tuple[int, str]]:
    """CLIENTS submissions at once, spread over the keys in turn."""
    barrier = threading.Barrier(CLIENTS)
    results: list[tuple[int, str]] = []
    lock = threading.Lock()

    def submit(key: str) -> None:
        client = key_client(key)
        try:
            barrier.wait()
            response = client.post("/api/v1/generations", small_job(), format="json")
            code = response.json().get("error", {}).get("code", "")
            with lock:
                results.append((response.status_code, code))
        finally:
            connection.close()

    threads = [threading.Thread(target=submit, args=(keys[n % len(keys)],)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_one_person_with_twenty_free_workspaces_gets_three_images_a_day_in_total(
    alice: Person,
) -> None:
    # Only the quota may refuse: not the per-minute rate.
    Plan.objects.filter(slug="free").update(requests_per_minute=1000)
    keys = twenty_free_workspaces_with_keys(alice)

    results = submit_concurrently(keys)

    assert Counter(results) == {(202, ""): 3, (429, "quota_exceeded"): CLIENTS - 3}
    mine = workspaces_for(alice.user)
    assert Job.objects.filter(workspace__in=mine).count() == Job.objects.count() == 3
    assert AllowanceCounter.objects.get(person=alice.user).used == 3
    reserves = QuotaLedgerEntry.objects.filter(kind="reserve")
    assert reserves.count() == 3 and set(reserves.values_list("person", flat=True)) == {
        alice.user.pk
    }
    # Each workspace's own counter tallies its share, and the shares add up to the three.
    for counter in QuotaCounter.objects.all():
        jobs = Job.objects.filter(workspace_id=counter.workspace_id)
        assert counter.used == jobs.aggregate(n=Sum("num_images"))["n"]
    assert QuotaCounter.objects.aggregate(n=Sum("used"))["n"] == 3
    # What every one of the twenty workspaces now reads: nothing left today.
    for key in keys[:: WORKSPACES // 4]:
        usage = key_client(key).get("/api/v1/usage")
        assert (usage.json()["limit"], usage.json()["remaining"]) == (3, 0)
