from __future__ import annotations

import re

import pytest
from django.core import mail
from playwright.sync_api import Page, expect

from generation.models import Job
from tests.browser.conftest import screenshot
from tests.e2e.conftest import WorkerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

EMAIL = "erin@example.com"
PASSWORD = "a long and unusual passphrase"


def sign_up_and_verify(page: Page, base: str) -> None:
    page.goto(f"{base}/accounts/signup/")
    page.fill('input[name="email"]', EMAIL)
    page.fill('input[name="password1"]', PASSWORD)
    page.fill('input[name="password2"]', PASSWORD)
    screenshot(page, "01-sign-up")
    page.locator('form button[type="submit"]').last.click()
    expect(page.get_by_role("heading", name=re.compile("Verify Your Email", re.I))).to_be_visible()
    [message] = mail.outbox
    assert message.to == [EMAIL]
    link = re.search(r"https?://\S+/accounts/confirm-email/\S+/", message.body).group(0)
    page.goto(link)
    screenshot(page, "02-confirm-email")
    page.locator('main form button[type="submit"]').click()
    page.wait_for_url(f"{base}/studio/")


def generate(page: Page, seed: int) -> None:
    page.fill("#id_prompt", "a red circle on a gray background")
    page.fill("#id_width", "64")
    page.fill("#id_height", "64")
    page.fill("#id_seed", str(seed))
    with page.expect_navigation():
        page.get_by_role("button", name="Generate").click()


def test_a_new_person_signs_up_generates_three_images_and_is_told_when_the_fourth_is_possible(
    live_server: object, celery_worker: WorkerProcess, page: Page
) -> None:
    base = live_server.url  # type: ignore[attr-defined]
    sign_up_and_verify(page, base)
    meter = page.get_by_test_id("quota-text")
    expect(meter).to_contain_text("3 of 3 images left today, resets in")
    screenshot(page, "03-studio")

    for made, left in enumerate((2, 1, 0), start=1):
        generate(page, seed=made)
        expect(meter).to_contain_text(f"{left} of 3 images left today")
        card = page.locator("article.job").first
        # The card is live: queued or running, a progress bar updated through its event
        # stream (polled only while the stream is down), until done.
        if card.get_attribute("data-status") != "succeeded":
            expect(card.locator("progress")).to_be_attached()
            if made == 1:
                screenshot(page, "04-job-in-progress")
        expect(card).to_have_attribute("data-status", "succeeded", timeout=120_000)
        image = card.locator("img").first
        expect(image).to_be_visible()
        job = Job.objects.get(seed=made)
        assert image.evaluate("img => img.naturalWidth") == job.width
        expect(card).to_contain_text(f"seed {made}")
    screenshot(page, "05-studio-three-images")

    generate(page, seed=4)
    refusal = page.get_by_role("alert")
    expect(refusal).to_contain_text("You have used all 3 images of your quota.")
    expect(refusal).to_contain_text("Your quota resets at")
    expect(refusal.get_by_role("link", name="Upgrade your plan")).to_have_attribute(
        "href", "/billing/"
    )
    expect(meter).to_contain_text("0 of 3 images left today")
    screenshot(page, "06-fourth-image-refused")
    assert Job.objects.count() == 3

    page.get_by_role("link", name="Gallery").click()
    expect(page.locator(".gallery li")).to_have_count(3)
    screenshot(page, "07-gallery")
    page.get_by_role("link", name="Billing").click()
    expect(page.get_by_text("Billing is not set up on this server")).to_be_visible()
    screenshot(page, "08-billing")
    page.get_by_role("link", name="API keys").click()
    page.get_by_role("button", name="Create key").click()
    expect(page.get_by_test_id("new-secret")).to_have_value(re.compile(r"^atl_"))
    screenshot(page, "09-api-keys")
