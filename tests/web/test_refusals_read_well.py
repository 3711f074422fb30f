from __future__ import annotations

import pytest
from django.test import Client

from billing.switches import operator_switches_update
from generation.models import Job, PolicyRule
from tests.conftest import Person

pytestmark = pytest.mark.django_db

FORM = {"prompt": "a red circle on a gray background", "width": "64", "height": "64"}


@pytest.fixture(autouse=True)
def _switches_reset() -> None:
    operator_switches_update(free_tier_paused=False, banner="", max_queued_jobs=None)


def test_a_refused_prompt_shows_the_reason_and_a_rewrite_to_use(alice_web: Client) -> None:
    PolicyRule.objects.all().delete()
    PolicyRule.objects.create(
        term="Famous Painter",
        reason="We do not imitate living artists.",
        suggestion="Describe the style instead.",
        replacement="bold brushwork",
    )
    response = alice_web.post("/studio/", {**FORM, "prompt": "a cat by Famous Painter"})
    assert response.status_code == 422
    html = response.content.decode()
    assert "This request was refused: We do not imitate living artists." in html
    assert "Describe the style instead." in html
    assert 'data-prompt="a cat bold brushwork"' in html and "Use this prompt" in html
    assert not Job.objects.exists()


def test_an_overload_refusal_says_when_to_come_back(alice_web: Client) -> None:
    operator_switches_update(free_tier_paused=True)
    response = alice_web.post("/studio/", FORM)
    assert response.status_code == 503
    html = response.content.decode()
    assert "The free tier is paused while demand is high" in html
    assert "Please try again in 5 min." in html
    assert "3 of 3</strong> images left" in html  # a refusal costs nothing


def test_the_operators_banner_is_on_every_page(alice_web: Client, charlie_web: Client) -> None:
    operator_switches_update(banner="Scheduled maintenance at 22:00 UTC.")
    for client, path in ((alice_web, "/studio/"), (alice_web, "/gallery/"), (charlie_web, "/")):
        assert "Scheduled maintenance at 22:00 UTC." in client.get(path).content.decode()


def test_a_queued_job_card_shows_its_place_in_the_queue(
    alice: Person, bob: Person, alice_web: Client
) -> None:
    bob.client().post("/api/v1/generations", {**FORM, "width": 64}, format="json")
    alice_web.post("/studio/", FORM)
    job = Job.objects.get(workspace=alice.workspace)
    card = alice_web.get(f"/jobs/{job.id}/").content.decode()
    assert "number 2 in the queue" in card
    assert "starting in about" in card
