from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from generation.models import Image, Job
from tests.conftest import Person, make_person, small_job

pytestmark = pytest.mark.django_db

PNG = b"\x89PNG\r\n\x1a\n a picture"


def submit(person: Person, prompt: str) -> Job:
    response = person.client().post("/api/v1/generations", small_job(prompt=prompt), format="json")
    assert response.status_code == 202, response.content
    return Job.objects.get(pk=response.json()["id"])


@pytest.fixture
def jobs(alice: Person) -> dict[str, Job]:
    dana = make_person("dana@example.com", plan="pro")
    now = timezone.now()
    done = submit(alice, "a lighthouse at dusk, " + "very " * 30 + "detailed")
    Job.objects.filter(pk=done.pk).update(
        status=Job.Status.SUCCEEDED,
        created_at=now - timedelta(seconds=30),
        started_at=now - timedelta(seconds=20),
        finished_at=now - timedelta(seconds=8),
    )
    image = Image(job=done, workspace=alice.workspace, index=0, width=64, height=64, seed=1)
    image.file.save("a.png", ContentFile(PNG), save=True)
    failed = submit(dana, "a blue teapot")
    Job.objects.filter(pk=failed.pk).update(
        status=Job.Status.FAILED,
        error_code="out_of_memory",
        created_at=now - timedelta(seconds=5),
        started_at=now - timedelta(seconds=4),
        finished_at=now - timedelta(seconds=3),
    )
    return {"done": done, "failed": failed, "image": image}  # type: ignore[dict-item]


def rows(page: str) -> int:
    return page.count('<tr><td class="action-checkbox">')


def test_the_job_list_shows_prompt_picture_workspace_plan_times_and_error(
    admin_client: Client, jobs: dict[str, object]
) -> None:
    page = admin_client.get("/admin/generation/job/").content.decode()
    assert "a lighthouse at dusk, very very" in page and "very " * 30 not in page
    assert f'src="/admin/generation/job/image/{jobs["image"].pk}/"' in page  # type: ignore[attr-defined]
    workspace = jobs["done"].workspace  # type: ignore[attr-defined]
    assert f'<a href="/admin/accounts/workspace/{workspace.pk}/change/">' in page
    assert '<td class="field-plan">Free</td>' in page and '<td class="field-plan">Pro</td>' in page
    assert '<td class="field-duration">12.0 s</td>' in page  # started 20 s ago, done 8 s ago
    assert '<td class="field-queue_wait">10.0 s</td>' in page
    assert '<td class="field-error_code">out_of_memory</td>' in page
    picture = admin_client.get(f"/admin/generation/job/image/{jobs['image'].pk}/")  # type: ignore[attr-defined]
    assert picture["Content-Type"] == "image/png"
    assert b"".join(picture.streaming_content) == PNG  # type: ignore[attr-defined]


def test_pictures_are_for_operators_only(client: Client, jobs: dict[str, object]) -> None:
    response = client.get(f"/admin/generation/job/image/{jobs['image'].pk}/")  # type: ignore[attr-defined]
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("dana@example.com", "failed"),
        ("teapot", "failed"),
        ("lighthouse", "done"),
        ("Dana@Example.com", "failed"),
        ("dana", "failed"),
    ],
)
def test_operators_find_jobs_by_email_prompt_or_workspace(
    admin_client: Client, jobs: dict[str, Job], term: str, expected: str
) -> None:
    page = admin_client.get("/admin/generation/job/", {"q": term}).content.decode()
    assert rows(page) == 1
    assert str(jobs[expected].pk)[:8] in page


def test_a_job_id_finds_exactly_that_job(admin_client: Client, jobs: dict[str, Job]) -> None:
    page = admin_client.get("/admin/generation/job/", {"q": str(jobs["done"].pk)}).content.decode()
    assert rows(page) == 1 and str(jobs["done"].pk)[:8] in page


def test_the_job_list_never_counts_every_job(admin_client: Client, jobs: dict[str, Job]) -> None:
    with CaptureQueriesContext(connection) as queries:
        assert admin_client.get("/admin/generation/job/").status_code == 200
    counts = [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
    assert counts, "the paginator counts something"
    assert all("LIMIT 10000" in sql for sql in counts), counts
    assert not any("generation_image" in sql or "billing_plan" in sql for sql in counts), counts
