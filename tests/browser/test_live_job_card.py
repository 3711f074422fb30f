"""A studio job card follows its job through the event stream, on the web server as shipped
(gunicorn and the front door), with a real worker: no polling while the stream is up."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, Request, expect

from generation.models import Job
from tests.browser.conftest import screenshot
from tests.conftest import PASSWORD, make_person
from tests.e2e.conftest import WorkerProcess
from tests.e2e.web_server import web_server

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    with web_server(tmp_path / "web.log", workers=1) as url:
        yield url


def test_the_job_card_updates_through_its_event_stream(
    server: str, celery_worker: WorkerProcess, page: Page
) -> None:
    alice = make_person("alice@example.com")
    requests: list[str] = []

    def seen(request: Request) -> None:
        requests.append(f"{request.method} {request.url.removeprefix(server)}")

    page.on("request", seen)
    page.goto(f"{server}/accounts/login/")
    page.fill('input[name="login"]', alice.user.email)
    page.fill('input[name="password"]', PASSWORD)
    page.locator('main form button[type="submit"]').click()
    page.wait_for_url(f"{server}/studio/")

    page.fill("#id_prompt", "a red circle on a gray background")
    page.fill("#id_width", "128")
    page.fill("#id_height", "128")
    with page.expect_navigation():
        page.get_by_role("button", name="Generate").click()
    job = Job.objects.get(workspace=alice.workspace)
    card = page.locator(f"#job-{job.id}")
    expect(card).to_be_attached()
    expect(card).to_have_attribute("data-status", "succeeded", timeout=120_000)
    expect(card.locator("img").first).to_be_visible()
    screenshot(page, "live-job-card")
    # The card opened its stream and heard the finish there; it never polled.
    assert f"GET /jobs/{job.id}/events/" in requests
    assert f"GET /jobs/{job.id}/" not in requests, requests
    stream = page.locator(".job-stream").first
    expect(stream).to_have_attribute("data-stream", "closed")
