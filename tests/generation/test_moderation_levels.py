"""Moderation levels: a plan's level goes on its jobs (the safety check reads it there),
strict policy rules apply only at the strict level, and OpenAI's moderation="low" lowers a
strict plan to standard only where the plan allows it."""

from __future__ import annotations

from typing import Any

import pytest

from billing.models import Plan
from generation.models import Job, PolicyRule
from tests.conftest import make_person, small_job

pytestmark = pytest.mark.django_db

GENERATIONS = "/v1/images/generations"


@pytest.fixture(autouse=True)
def strict_rule(settings: Any) -> None:
    settings.OPENAI_WAIT_SECONDS = 0  # no worker here: the OpenAI call gives up at once
    PolicyRule.objects.create(
        term="boxing match", reason="Violence is refused at the strict level.",
        suggestion="Describe a calmer scene.", level="strict",
    )  # fmt: skip


def strict_plan(*, low_allowed: bool) -> str:
    Plan.objects.filter(slug="pro").update(
        moderation_level="strict", moderation_low_allowed=low_allowed
    )
    return "pro"


def test_a_standard_plan_ignores_strict_rules_and_its_jobs_are_standard() -> None:
    person = make_person("s@example.com", plan="pro")
    response = person.client().post(
        "/api/v1/generations", small_job(prompt="a boxing match"), format="json"
    )
    assert response.status_code == 202, response.content
    assert Job.objects.get().moderation_level == "standard"


def test_a_strict_plan_applies_strict_rules() -> None:
    person = make_person("s@example.com", plan=strict_plan(low_allowed=False))
    refused = person.client().post(
        "/api/v1/generations", small_job(prompt="a boxing match"), format="json"
    )
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "policy_refused"
    fine = person.client().post("/api/v1/generations", small_job(), format="json")
    assert fine.status_code == 202
    assert Job.objects.get().moderation_level == "strict"


@pytest.mark.parametrize(("low_allowed", "level"), [(True, "standard"), (False, "strict")])
def test_openai_moderation_low_lowers_the_level_where_the_plan_allows(
    low_allowed: bool, level: str
) -> None:
    person = make_person("s@example.com", plan=strict_plan(low_allowed=low_allowed))
    body = {"prompt": "a boxing match", "size": "64x64", "moderation": "low"}
    response = person.client().post(GENERATIONS, body, format="json")
    if level == "strict":
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "policy_refused"
        assert not Job.objects.exists()
    else:
        assert response.status_code == 503  # admitted; no worker took it in time
        assert Job.objects.get().moderation_level == "standard"


def test_openai_moderation_auto_keeps_the_plans_level() -> None:
    person = make_person("s@example.com", plan=strict_plan(low_allowed=True))
    body = {"prompt": "a red circle", "size": "64x64", "moderation": "auto"}
    person.client().post(GENERATIONS, body, format="json")
    assert Job.objects.get().moderation_level == "strict"
