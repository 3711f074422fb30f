"""The content policy in English and French: rules match French prompts (accents, elisions,
"à la manière de"), and a refusal is written in the caller's language, else in English."""

from __future__ import annotations

import pytest
from django.test import Client

from generation.models import Job, PolicyRefusal, PolicyRule, PolicyRuleTranslation
from generation.policy import policy_match
from tests.conftest import Person, small_job

pytestmark = pytest.mark.django_db

FRENCH_PROMPT = "un portrait à la manière de Greg Rutkowski, au crépuscule"
ENGLISH_PROMPT = "a portrait in the style of Greg Rutkowski, at dusk"


def refuse(person: Person, prompt: str, **headers: str) -> dict:
    response = person.client().post(
        "/api/v1/generations", small_job(prompt=prompt), format="json", headers=headers
    )
    assert response.status_code == 422, response.content
    return response.json()["error"]


@pytest.mark.parametrize(
    ("prompt", "phrase"),
    [
        (FRENCH_PROMPT, "à la manière de Greg Rutkowski"),
        ("un château dans le style de Hayao Miyazaki", "dans le style de Hayao Miyazaki"),
        ("un château dans le style d\u2019Hayao Miyazaki", "dans le style d\u2019Hayao Miyazaki"),
        ("un château à la façon d'HAYAO MIYAZAKI", "à la façon d'HAYAO MIYAZAKI"),
        ("une forêt d'après Loish", "d'après Loish"),
        ("une forêt inspirée de Sam Yang", "inspirée de Sam Yang"),
        ("un portrait par Grég Rutkówski", "par Grég Rutkówski"),
        ("l'ombre de Karla Ortiz", "Karla Ortiz"),
    ],
)
def test_french_phrasings_match_with_their_imitation_phrase(prompt: str, phrase: str) -> None:
    match = policy_match(prompt, list(PolicyRule.objects.filter(active=True)))
    assert match is not None
    assert prompt[match.start : match.end] == phrase


def test_an_elided_article_is_a_word_boundary_for_a_rule_term() -> None:
    rule = PolicyRule.objects.create(term="ombre", reason="r", suggestion="s")
    assert policy_match("dans l'ombre du château", [rule]) is not None
    assert policy_match("dans l\u2019ombre du château", [rule]) is not None
    assert policy_match("un sombre château", [rule]) is None  # inside another word


def test_a_french_prompt_is_refused_in_french_with_a_french_suggestion(alice: Person) -> None:
    error = refuse(alice, FRENCH_PROMPT, accept_language="fr-FR,fr;q=0.9")
    assert error["code"] == "policy_refused" and error["type"] == "invalid_request_error"
    assert error["reason"] == "Atelier n'imite pas le style d'un artiste vivant sans son accord."
    assert error["suggestion"].startswith("Décrivez plutôt ce qui vous plaît, par exemple :")
    assert error["message"].startswith("Cette demande a été refusée : Atelier n'imite pas")
    assert error["suggested_prompt"] == (
        "un portrait avec un éclairage fantastique spectaculaire, une touche picturale et un "
        "souffle épique, au crépuscule"
    )
    assert PolicyRefusal.objects.get().prompt == FRENCH_PROMPT
    assert not Job.objects.exists()


def test_the_same_rule_refuses_the_english_prompt_in_english(alice: Person) -> None:
    error = refuse(alice, ENGLISH_PROMPT, accept_language="en")
    assert error["code"] == "policy_refused"
    assert error["reason"] == (
        "Atelier does not imitate the style of a living artist without their consent."
    )
    assert error["suggestion"].startswith("Describe the traits you like instead")
    assert error["message"].startswith("This request was refused: Atelier does not imitate")
    assert error["suggested_prompt"] == (
        "a portrait with dramatic fantasy lighting, painterly brushwork and an epic sense of "
        "scale, at dusk"
    )


def test_a_french_prompt_asked_without_a_language_is_refused_in_english(alice: Person) -> None:
    error = refuse(alice, FRENCH_PROMPT)
    assert error["reason"].startswith("Atelier does not imitate")
    assert error["suggested_prompt"].startswith("un portrait with dramatic fantasy lighting")


def test_a_rule_without_french_words_falls_back_to_english(alice: Person) -> None:
    PolicyRule.objects.create(
        term="Jane Doe-Painter",
        reason="A living artist asked us not to imitate her work.",
        suggestion="Describe the palette you want.",
        replacement="with a warm palette",
    )
    error = refuse(alice, "un verger à la manière de Jane Doe Painter", accept_language="fr")
    assert error["reason"] == "A living artist asked us not to imitate her work."
    assert error["message"].startswith("Cette demande a été refusée : A living artist")
    assert error["suggested_prompt"] == "un verger with a warm palette"


def test_french_words_written_in_the_admin_are_used(admin_client: Client, alice: Person) -> None:
    rule = PolicyRule.objects.create(
        term="Jane Doe-Painter", reason="Not her.", suggestion="Describe it.", replacement=""
    )
    response = admin_client.post(
        f"/admin/generation/policyrule/{rule.pk}/change/",
        {
            "term": rule.term,
            "reason": rule.reason,
            "suggestion": rule.suggestion,
            "replacement": "",
            "active": "on",
            "created_at_0": "2026-01-01",
            "created_at_1": "00:00:00",
            "translations-TOTAL_FORMS": "1",
            "translations-INITIAL_FORMS": "0",
            "translations-MIN_NUM_FORMS": "0",
            "translations-MAX_NUM_FORMS": "1000",
            "translations-0-language": "fr",
            "translations-0-reason": "Elle a demandé à ne pas être imitée.",
            "translations-0-suggestion": "Décrivez la palette que vous voulez.",
            "translations-0-replacement": "avec une palette chaude",
            "translations-0-rule": str(rule.pk),
        },
    )
    assert response.status_code == 302, response.content
    assert PolicyRuleTranslation.objects.get(rule=rule).language == "fr"
    french = refuse(alice, "un verger par Jane Doe Painter", accept_language="fr")
    assert french["reason"] == "Elle a demandé à ne pas être imitée."
    assert french["suggested_prompt"] == "un verger avec une palette chaude"
    english = refuse(alice, "an orchard by Jane Doe Painter")
    assert english["reason"] == "Not her." and english["suggested_prompt"] is None


def test_the_studio_shows_a_french_refusal(alice: Person) -> None:
    client = Client(headers={"accept-language": "fr"})
    client.force_login(alice.user)
    response = client.post("/studio/", {"prompt": FRENCH_PROMPT, "width": "64", "height": "64"})
    html = response.content.decode()
    assert response.status_code == 422
    assert "Cette demande a été refusée : Atelier n&#x27;imite pas" in html
    assert "Décrivez plutôt ce qui vous plaît" in html
    assert "Essayez plutôt :" in html and "Utiliser ce prompt" in html
