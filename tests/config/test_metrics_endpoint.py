"""/metrics: refused to anonymous callers when protected, and no tenant in any label."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Person, free_images_used_today, small_job

pytestmark = pytest.mark.django_db

TOKEN = "scrape-secret-1"


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def value(text: str, name: str, **labels: str) -> float:
    return sum(
        number
        for sample, sample_labels, number in samples(text)
        if sample == name and all(sample_labels.get(k) == v for k, v in labels.items())
    )


@override_settings(METRICS_TOKEN=TOKEN, METRICS_ALLOW_NETWORKS=[])
def test_metrics_refuse_a_caller_without_the_token() -> None:
    assert Client().get("/metrics").status_code == 403
    wrong = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer not-the-token")
    assert wrong.status_code == 403
    assert wrong.json()["error"]["code"] == "metrics_forbidden"
    right = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert right.status_code == 200
    assert "atelier_queue_jobs" in right.content.decode()


def test_metrics_answer_loopback_by_default_and_no_other_address() -> None:
    assert Client().get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    assert Client().get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 403


def test_counters_move_and_no_label_names_a_tenant(alice: Person, bob: Person) -> None:
    before = Client().get("/metrics").content.decode()
    admitted = alice.client().post("/api/v1/generations", small_job(), format="json")
    assert admitted.status_code == 202
    free_images_used_today(bob, 3)
    refused = bob.client().post("/api/v1/generations", small_job(), format="json")
    assert refused.json()["error"]["code"] == "quota_exceeded"

    after = Client().get("/metrics").content.decode()
    for name, labels, delta in [
        ("atelier_admissions_total", {"outcome": "admitted", "plan": "free"}, 1),
        ("atelier_admissions_total", {"outcome": "refused", "code": "quota_exceeded"}, 1),
        ("atelier_quota_images_total", {"kind": "reserved"}, 1),
        ("atelier_http_requests_total", {"route": "api/v1/generations", "status": "202"}, 1),
        ("atelier_http_requests_total", {"route": "api/v1/generations", "status": "429"}, 1),
    ]:
        assert value(after, name, **labels) - value(before, name, **labels) == delta, name
    # The queue as it stands, read at scrape time.
    assert value(after, "atelier_queue_jobs") >= 1
    assert value(after, "atelier_lane_oldest_queued_age_seconds", lane="free") >= 0

    job_id = admitted.json()["id"]
    tenants = {
        str(alice.workspace.pk), str(bob.workspace.pk), str(alice.user.pk), str(bob.user.pk),
        alice.user.email, bob.user.email, job_id, alice.key[:12], bob.key[:12],
    }  # fmt: skip
    atelier = [(name, labels) for name, labels, _ in samples(after) if name.startswith("atelier_")]
    assert len(atelier) > 20
    # Users' ids are small numbers, as HTTP statuses are: user 400 is not named by a 400.
    statuses_alike = tenants - {str(alice.user.pk), str(bob.user.pk)}
    for name, labels in atelier:
        for label, label_value in labels.items():
            named = statuses_alike if label == "status" else tenants
            assert label_value not in named, (name, labels)
            assert not any(len(t) > 6 and t in label_value for t in tenants), (name, labels)
