"""X-Request-ID: echoed when sent, made when not, and on the log line of the request."""

from __future__ import annotations

import logging

import pytest
from django.test import Client

from generation.models import Job
from tests.conftest import Person, free_images_used_today, small_job

pytestmark = pytest.mark.django_db


def test_an_incoming_request_id_is_echoed_and_a_missing_one_is_made() -> None:
    echoed = Client().get("/healthz", HTTP_X_REQUEST_ID="lb-7f3a.42")
    assert echoed.headers["X-Request-ID"] == "lb-7f3a.42"
    made = Client().get("/healthz")
    assert len(made.headers["X-Request-ID"]) == 32
    # Not a token (spaces, far too long): replaced, never echoed back into logs or headers.
    odd = Client().get("/healthz", HTTP_X_REQUEST_ID="x" * 500)
    assert odd.headers["X-Request-ID"] != "x" * 500


def test_a_job_keeps_the_request_id_that_admitted_it(alice: Person) -> None:
    response = alice.client().post(
        "/api/v1/generations", small_job(), format="json", HTTP_X_REQUEST_ID="req-job-1"
    )
    assert response.headers["X-Request-ID"] == "req-job-1"
    assert Job.objects.get(pk=response.json()["id"]).request_id == "req-job-1"


def test_a_refusal_is_logged_once_at_info_with_its_code(
    bob: Person, caplog: pytest.LogCaptureFixture
) -> None:
    free_images_used_today(bob, 3)
    with caplog.at_level(logging.INFO):
        refused = bob.client().post(
            "/api/v1/generations", small_job(), format="json", HTTP_X_REQUEST_ID="req-refused"
        )
    assert refused.status_code == 429
    mine = [record for record in caplog.records if record.request_id == "req-refused"]
    assert [(r.levelname, r.code) for r in mine if getattr(r, "code", "")] == [
        ("INFO", "quota_exceeded")
    ]
    assert not [r for r in mine if r.levelno >= logging.WARNING], [r.getMessage() for r in mine]
