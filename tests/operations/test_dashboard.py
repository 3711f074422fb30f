from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from generation.models import Image, Job
from generation.queue import images_ahead, queue_index_remove, worker_alive
from operations.selectors import operator_dashboard
from operations.services import operator_workspace_suspend
from tests.conftest import Person, make_person, small_job

pytestmark = pytest.mark.django_db


def submit(person: Person) -> Job:
    response = person.client().post("/api/v1/generations", small_job(), format="json")
    assert response.status_code == 202, response.content
    return Job.objects.get(pk=response.json()["id"])


def finish(job: Job, *, status: str, ago: timedelta, worker: str = "", code: str = "") -> None:
    Job.objects.filter(pk=job.pk).update(
        status=status, worker=worker, error_code=code, finished_at=timezone.now() - ago
    )
    queue_index_remove([job])  # as the services that finish a job do


def image(job: Job, *, ago: timedelta) -> None:
    Image.objects.create(
        job=job, workspace=job.workspace, index=0, file="x.png", width=64, height=64, seed=1,
        created_at=timezone.now() - ago,
    )  # fmt: skip


def test_the_dashboard_shows_the_last_hour_as_the_database_and_redis_hold_it(
    admin_client: Client, alice: Person
) -> None:
    dana = make_person("dana@example.com", plan="pro")
    made = [submit(alice), submit(alice), submit(dana)]
    finish(made[0], status=Job.Status.SUCCEEDED, ago=timedelta(minutes=3), worker="gpu-1")
    image(made[0], ago=timedelta(minutes=3))
    finish(made[2], status=Job.Status.SUCCEEDED, ago=timedelta(minutes=59), worker="gpu-2")
    image(made[2], ago=timedelta(minutes=59))
    old = submit(dana)
    finish(old, status=Job.Status.FAILED, ago=timedelta(minutes=61), code="boom")
    image(old, ago=timedelta(minutes=61))  # outside the hour
    finish(made[1], status=Job.Status.FAILED, ago=timedelta(minutes=10), code="out_of_memory")
    # Refused: the fourth of alice's three free images today, and twice a suspended workspace.
    submit(alice)
    assert alice.client().post("/api/v1/generations", small_job(), format="json").status_code == 429
    operator_workspace_suspend(actor=None, workspace=dana.workspace)  # type: ignore[arg-type]
    for _ in range(2):
        assert (
            dana.client().post("/api/v1/generations", small_job(), format="json").status_code == 403
        )
    worker_alive("gpu-1", ["free", "standard"])

    dashboard = operator_dashboard()

    hour_ago = timezone.now() - timedelta(minutes=60)
    assert dashboard.images_last_hour == Image.objects.filter(created_at__gte=hour_ago).count() == 2
    assert sum(dashboard.images_per_minute_by_plan["Free"]) == 1
    assert sum(dashboard.images_per_minute_by_plan["Pro"]) == 1
    assert dashboard.images_per_minute_by_plan["Pro"][0] == 1  # 59 minutes ago: the first slot
    assert dashboard.images_per_minute_by_plan["Free"][-4] == 1  # 3 minutes ago
    assert dashboard.failures_last_hour == 1
    assert [job.error_code for job in dashboard.recent_failures] == ["out_of_memory"]
    assert dashboard.refusals_by_code == [("workspace_suspended", 2), ("quota_exceeded", 1)]
    assert dashboard.live_workers == 1
    lanes = {lane.lane: lane for lane in dashboard.lanes or []}
    assert (lanes["free"].workers, lanes["standard"].workers, lanes["priority"].workers) == (
        1,
        1,
        0,
    )
    assert lanes["free"].images_ahead == images_ahead(lane="free")  # as admission reads it
    queued = Job.objects.filter(status="queued")
    assert dashboard.queued == (queued.count(), sum(job.num_images for job in queued)) == (1, 1)
    assert dashboard.images_by_worker == [("gpu-1", 1), ("gpu-2", 1)]
    statuses = dict(dashboard.jobs_by_status)
    assert statuses["Queued"] == 1 and statuses["Succeeded"] == 2 and statuses["Failed"] == 2

    # The part htmx fetches every few seconds: the same figures, and the charts as SVG.
    part = admin_client.get("/admin/dashboard/").content.decode()
    assert '<p data-figure="queued">1 jobs (1 images) queued in all lanes.</p>' in part
    assert '<b data-figure="images">2</b>' in part
    assert '<b data-figure="refusals">3</b>' in part and '<b data-figure="failures">1</b>' in part
    assert (
        '<tr data-code="workspace_suspended"><th scope="row">workspace_suspended</th><td>2</td>'
        in part
    )
    assert part.count("<svg") == 3 and "<html" not in part
    index = admin_client.get("/admin/").content.decode()
    assert 'hx-get="/admin/dashboard/" hx-trigger="every 5s"' in index
    assert "/static/web/htmx-2.0.11.min.js" in index


def test_the_dashboard_reads_a_bounded_hour(
    admin_client: Client, alice: Person, django_assert_max_num_queries: object
) -> None:
    for _ in range(3):
        submit(alice)
    with django_assert_max_num_queries(20):  # type: ignore[operator]
        assert admin_client.get("/admin/dashboard/").status_code == 200


def test_only_operators_see_the_dashboard(client: Client, alice: Person) -> None:
    client.force_login(alice.user)
    response = client.get("/admin/dashboard/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
