from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

from accounts.services import workspace_suspend
from billing.models import QuotaCounter
from generation.models import Job
from tests.conftest import Person

pytestmark = pytest.mark.django_db

FORM = {"prompt": "a red circle on a gray background", "width": "64", "height": "64"}


def test_the_studio_shows_the_meter_and_the_models_defaults(alice_web: Client) -> None:
    page = alice_web.get("/studio/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "3 of 3</strong> images left today, resets in" in html
    assert 'name="steps"' in html and 'max="8"' in html  # the Free plan's step limit


def test_generating_from_the_studio_admits_a_job_through_the_api_path(
    alice: Person, alice_web: Client
) -> None:
    response = alice_web.post("/studio/", {**FORM, "seed": "7", "steps": ""})
    assert response.status_code == 302
    job = Job.objects.get(workspace=alice.workspace)
    assert (job.status, job.seed, job.width, job.user) == ("queued", 7, 64, alice.user)
    page = alice_web.get("/studio/").content.decode()
    assert "2 of 3</strong> images left today" in page
    assert f'hx-get="/jobs/{job.id}/"' in page  # the card polls while the job is queued


def test_the_fourth_image_of_the_day_is_refused_with_the_reset_time_and_an_upgrade_link(
    alice_web: Client,
) -> None:
    for _ in range(3):
        assert alice_web.post("/studio/", FORM).status_code == 302
    refused = alice_web.post("/studio/", FORM)
    assert refused.status_code == 429
    html = refused.content.decode()
    assert 'data-code="quota_exceeded"' in html
    assert "Your quota resets at" in html and " UTC</time>, in " in html
    assert 'href="/billing/"' in html and "Upgrade your plan" in html
    assert "0 of 3</strong> images left today" in html
    assert Job.objects.count() == 3


def test_a_value_over_the_plan_is_shown_next_to_its_field(alice_web: Client) -> None:
    response = alice_web.post("/studio/", {**FORM, "width": "1024"})
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="err-width"' in html and "At most 512 on the Free plan." in html
    assert 'value="1024"' in html  # what the person typed is kept
    assert not Job.objects.exists()
    assert not QuotaCounter.objects.filter(used__gt=0).exists()


def test_a_suspended_workspace_is_told_so_and_charged_nothing(
    alice: Person, alice_web: Client
) -> None:
    workspace_suspend(workspace=alice.workspace)
    response = alice_web.post("/studio/", FORM)
    assert response.status_code == 403
    assert "This workspace is suspended." in response.content.decode()
    assert not Job.objects.exists()


def test_the_job_card_shows_progress_then_the_images(alice: Person, alice_web: Client) -> None:
    alice_web.post("/studio/", FORM)
    job = Job.objects.get()
    Job.objects.filter(pk=job.pk).update(status="running", progress=0.5)
    card = alice_web.get(f"/jobs/{job.id}/").content.decode()
    assert 'value="50"' in card and "every 1s" in card
    Job.objects.filter(pk=job.pk).update(
        status="succeeded", progress=1.0, finished_at=timezone.now()
    )
    job.images.create(
        workspace=alice.workspace, index=0, file="images/x.png", width=64, height=64, seed=job.seed
    )
    card = alice_web.get(f"/jobs/{job.id}/").content.decode()
    assert "every 1s" not in card  # polling stops
    assert f"/images/{job.images.get().id}" in card
    assert 'id="quota-meter"' in card and 'hx-swap-oob="true"' in card


def test_cancelling_from_the_page_gives_the_image_back(alice_web: Client) -> None:
    alice_web.post("/studio/", FORM)
    job = Job.objects.get()
    response = alice_web.post(f"/jobs/{job.id}/cancel/", follow=True)
    assert "Cancelled; its images were given back" in response.content.decode()
    job.refresh_from_db()
    assert job.status == "cancelled"
    assert "3 of 3</strong> images left" in response.content.decode()
