"""An operator's admin in Chromium while jobs run and are refused: the dashboard redraws
itself (htmx) and its figures match the database; the job list and a workspace page."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from accounts.models import User
from generation.models import Image, Job
from operations.models import AuditEntry
from operations.services import operator_workspace_suspend
from tests.browser.conftest import SCREENSHOTS, screenshot
from tests.conftest import Person, make_person, small_job
from tests.e2e.conftest import WorkerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

OPERATOR, PASSWORD = "ops@example.com", "a long operator passphrase"


def submit(person: Person, prompt: str, expected: int = 202) -> None:
    response = person.client().post("/api/v1/generations", small_job(prompt=prompt), format="json")
    assert response.status_code == expected, response.content


def wait_until_done(timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while Job.objects.filter(status__in=Job.ACTIVE_STATUSES).exists():
        assert time.monotonic() < deadline, "jobs did not finish"
        time.sleep(0.5)


def test_an_operator_watches_the_last_hour_finds_a_job_and_opens_a_workspace(
    live_server: object, celery_worker: WorkerProcess, page: Page
) -> None:
    base = live_server.url  # type: ignore[attr-defined]
    User.objects.create_superuser(email=OPERATOR, password=PASSWORD)
    alice, erin = make_person("alice@example.com"), make_person("erin@example.com")
    frank = make_person("frank@example.com")
    for n, prompt in enumerate(("a lighthouse at dusk", "a red kite", "a blue teapot")):
        submit(alice, f"{prompt} {n}")
    submit(erin, "a green field under a gray sky")
    # A job that failed a little earlier (the worker's out-of-memory answer).
    Job.objects.create(
        workspace=erin.workspace, user=erin.user, model="demo", prompt="a huge mural",
        width=64, height=64, steps=2, guidance=1.0, seed=9, status=Job.Status.FAILED,
        error_code="out_of_memory", started_at=timezone.now() - timedelta(seconds=3),
        finished_at=timezone.now(),
    )  # fmt: skip

    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(f"{base}/admin/login/?next=/admin/")
    page.fill('input[name="username"]', OPERATOR)
    page.fill('input[name="password"]', PASSWORD)
    page.locator('input[type="submit"]').click()
    page.wait_for_url(f"{base}/admin/")
    expect(page.get_by_role("heading", name="Queue by lane, now")).to_be_visible()
    page.evaluate("window.stillTheSamePage = true")  # gone if the page reloads

    # While the worker renders: refused requests (quota, suspension) show up by code.
    submit(alice, "a fourth picture", expected=429)
    operator_workspace_suspend(actor=User.objects.get(email=OPERATOR), workspace=frank.workspace)
    submit(frank, "anything", expected=403)
    expect(page.locator('[data-figure="refusals"]')).to_have_text("2", timeout=30_000)
    screenshot(page, "admin-01-dashboard-while-jobs-run")

    wait_until_done()
    made = Image.objects.filter(created_at__gte=timezone.now() - timedelta(hours=1)).count()
    assert made == 4 == Job.objects.filter(status=Job.Status.SUCCEEDED).count()
    expect(page.locator('[data-figure="images"]')).to_have_text(str(made), timeout=30_000)
    failed = Job.objects.filter(status=Job.Status.FAILED).count()
    expect(page.locator('[data-figure="failures"]')).to_have_text(str(failed))
    expect(page.locator('[data-figure="refusals"]')).to_have_text("2")
    refusals = page.locator('[data-table="refusals"]')
    expect(refusals.locator('[data-code="quota_exceeded"] td')).to_have_text("1")
    expect(refusals.locator('[data-code="workspace_suspended"] td')).to_have_text("1")
    expect(page.locator('[data-figure="workers"]')).to_have_text("1")
    workers = page.locator('[data-table="workers"] td')
    expect(workers).to_have_text("4")
    assert page.evaluate("window.stillTheSamePage") is True  # redrawn in place by htmx
    screenshot(page, "admin-02-dashboard")
    # The README's picture of the dashboard: the viewport, as an operator first sees it.
    page.screenshot(path=str(SCREENSHOTS / "admin-dashboard.png"))

    page.goto(f"{base}/admin/generation/job/")
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(5)
    thumbnail = rows.filter(has_text="a green field").locator("td.field-thumbnail img")
    expect(thumbnail).to_be_visible()
    assert thumbnail.evaluate("img => img.decode().then(() => img.naturalWidth)") == 64
    page.fill("#searchbar", "teapot")
    page.locator("#changelist-search input[type=submit]").click()
    expect(rows).to_have_count(1)
    expect(rows.first.locator("td.field-short_prompt")).to_have_text("a blue teapot 2")
    expect(rows.first.locator("td.field-plan")).to_have_text("Free")
    page.goto(f"{base}/admin/generation/job/")
    page.locator("#toggle-nav-sidebar").click()  # the list gets the whole width
    screenshot(page, "admin-03-job-list")

    rows.filter(has_text="a lighthouse at dusk").locator("td.field-workspace_link a").click()
    expect(page.locator('[data-field="usage"]')).to_have_text("3 / 3")
    expect(page.locator('[data-field="plan"]')).to_have_text("Free")
    screenshot(page, "admin-04-workspace")
    page.locator('[data-table="keys"]').get_by_role("button", name="Revoke").click()
    expect(page.locator(".messagelist")).to_contain_text("revoked")
    assert alice.client().get("/api/v1/me").status_code == 401
    assert AuditEntry.objects.filter(action="api_key.revoke").count() == 1
