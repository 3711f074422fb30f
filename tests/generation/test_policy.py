from __future__ import annotations

import pytest

from billing.models import QuotaCounter
from generation.models import Job, PolicyRefusal, PolicyRule
from generation.policy import policy_match
from tests.conftest import Person, small_job

pytestmark = pytest.mark.django_db


def rule(term: str = "Greg Rutkowski") -> PolicyRule:
    return PolicyRule.objects.get(term=term)


@pytest.mark.parametrize(
    "prompt",
    [
        "a castle in the style of Greg Rutkowski",
        "a castle, GREG RUTKOWSKI",
        "a castle by greg-rutkowski!",
        "a castle (Grég Rutkówski)",
        "a castle by greg_rutkowski",
        "a castle by\tGreg\n Rutkowski.",
    ],
)
def test_rules_match_across_case_accents_and_punctuation(prompt: str) -> None:
    match = policy_match(prompt, [rule()])
    assert match is not None and match.rule.term == "Greg Rutkowski"


@pytest.mark.parametrize(
    "prompt",
    [
        "a castle by gregrutkowski",  # one word: not the name
        "a greg rutkowskiesque castle",
        "a sloish swamp",  # "Loish" inside another word
        "a castle by Greg",
        "hayao the cat, miyazakis garden",
    ],
)
def test_rules_do_not_match_inside_other_words(prompt: str) -> None:
    assert policy_match(prompt, list(PolicyRule.objects.all())) is None


def test_the_rewrite_replaces_the_imitation_with_the_traits() -> None:
    match = policy_match("a castle in the style of Greg Rutkowski, at dusk", [rule()])
    assert match is not None
    assert match.rewrite("a castle in the style of Greg Rutkowski, at dusk") == (
        "a castle with dramatic fantasy lighting, painterly brushwork and an epic sense of "
        "scale, at dusk"
    )


def test_a_refusal_is_a_422_with_reason_and_suggestion_that_costs_nothing(alice: Person) -> None:
    body = small_job(prompt="a lighthouse in the style of Hayao Miyazaki")
    response = alice.client().post("/api/v1/generations", body, format="json")
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "policy_refused"
    assert error["param"] == "prompt"
    assert "living artist" in error["reason"]
    assert error["suggestion"].startswith("Describe the traits")
    assert error["suggested_prompt"] == (
        "a lighthouse with soft hand-painted backgrounds, gentle pastoral colours and "
        "whimsical detail"
    )
    assert not Job.objects.exists()
    assert not QuotaCounter.objects.filter(used__gt=0).exists()
    usage = alice.client().get("/api/v1/usage").json()
    assert usage["used"] == 0 and usage["remaining"] == 3

    [logged] = PolicyRefusal.objects.all()
    assert logged.workspace == alice.workspace and logged.rule == rule("Hayao Miyazaki")
    assert logged.prompt == body["prompt"]


def test_the_suggested_rewrite_is_accepted(alice: Person) -> None:
    refused = alice.client().post(
        "/api/v1/generations", small_job(prompt="a fox by Loish"), format="json"
    )
    rewrite = refused.json()["error"]["suggested_prompt"]
    accepted = alice.client().post("/api/v1/generations", small_job(prompt=rewrite), format="json")
    assert accepted.status_code == 202


def test_rules_managed_in_the_admin_take_effect(admin_client: object, alice: Person) -> None:
    response = admin_client.post(  # type: ignore[attr-defined]
        "/admin/generation/policyrule/add/",
        {
            "term": "Jane Doe-Painter",
            "reason": "A living artist asked us not to imitate her work.",
            "suggestion": "Describe the palette and brushwork you want.",
            "replacement": "",
            "active": "on",
            "created_at_0": "2026-01-01",
            "created_at_1": "00:00:00",
            # The inline of translations (none here: the rule speaks English only).
            "translations-TOTAL_FORMS": "0",
            "translations-INITIAL_FORMS": "0",
            "translations-MIN_NUM_FORMS": "0",
            "translations-MAX_NUM_FORMS": "1000",
        },
    )
    assert response.status_code == 302
    refused = alice.client().post(
        "/api/v1/generations", small_job(prompt="a pear, jane doe painter style"), format="json"
    )
    assert refused.status_code == 422
    assert refused.json()["error"]["suggested_prompt"] is None


def test_inactive_rules_do_not_refuse(alice: Person) -> None:
    PolicyRule.objects.filter(term="Sam Yang").update(active=False)
    response = alice.client().post(
        "/api/v1/generations", small_job(prompt="portrait by Sam Yang"), format="json"
    )
    assert response.status_code == 202
