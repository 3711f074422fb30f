"""Redis out of reach: a submission is a 503 that says when to come back and costs nothing,
or, when the broker fails only after the job was kept, the job waits in the database and
the sweeper sends its ticket again. Never a 500, never a stranded job."""

from __future__ import annotations

from datetime import timedelta

import pytest
from celery import current_app
from django.test import override_settings
from django.utils import timezone
from kombu.exceptions import OperationalError
from PIL import Image as PILImage

from bench.common import free_port
from billing.models import QuotaCounter, QuotaLedgerEntry
from generation import pipeline, tasks, tickets
from generation.models import Job
from tests.conftest import Person, small_job
from tests.web.conftest import signed_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def redis_unreachable(settings: object) -> None:
    """The cache behind rate limits points at a port where nothing listens."""
    settings.CACHES = {  # type: ignore[attr-defined]
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
        }
    }
    settings.DEBUG = True  # type: ignore[attr-defined]  # no HTML debug page either


def test_with_redis_unreachable_a_submission_is_a_503_that_costs_nothing(
    alice: Person, redis_unreachable: None
) -> None:
    response = alice.client().post("/api/v1/generations", small_job(), format="json")
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "service_unavailable" and error["type"] == "overloaded_error"
    assert int(response["Retry-After"]) > 0
    assert not Job.objects.exists()
    assert not QuotaCounter.objects.exists()


def test_with_redis_unreachable_the_studio_page_says_so(
    alice: Person, redis_unreachable: None
) -> None:
    response = signed_in(alice).post("/studio/", {"prompt": "a red circle", "width": "64"})
    assert response.status_code == 503
    assert "Nothing was charged" in response.content.decode()
    assert int(response["Retry-After"]) > 0
    assert not Job.objects.exists()


def waiting_tickets(lane: str) -> int:
    return tickets.lane_tickets_waiting(lane)


# The serial worker: the pipelined one settles on a thread of its own, whose connection does
# not see this test's uncommitted rows (its free-lane ticket must stay out of the suite's
# shared worker, so the test is not transactional).
@override_settings(WORKER_PIPELINE=False)
def test_a_ticket_lost_to_the_broker_is_sent_again_and_the_job_runs(
    alice: Person, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broker_down(*args: object, **kwargs: object) -> None:
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    with monkeypatch.context() as patch:
        patch.setattr(current_app, "send_task", broker_down)
        response = alice.client().post("/api/v1/generations", small_job(), format="json")
    assert response.status_code == 202, response.content  # the job is kept, not a 500
    job = Job.objects.get(pk=response.json()["id"])
    assert job.status == Job.Status.QUEUED
    assert waiting_tickets(job.lane) == 0  # its ticket never reached the broker

    assert tickets.tickets_resend() == 0  # too soon: a worker may simply be busy
    later = timezone.now() + timedelta(minutes=5)
    assert tickets.tickets_resend(at=later) == 1
    assert waiting_tickets(job.lane) == 1
    assert tickets.tickets_resend(at=later) == 0  # a ticket is waiting: nothing more to send

    monkeypatch.setattr(
        pipeline,
        "run_batch",
        lambda spec, items, **kw: [PILImage.new("RGB", (64, 64), "gray") for _ in items],
    )
    tasks.run_job.run(str(job.pk))  # what the worker does with the ticket
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED
    assert job.images.count() == 1
    assert QuotaCounter.objects.get(workspace=alice.workspace).used == 1
    assert QuotaLedgerEntry.objects.filter(job=job, kind="capture").exists()
