"""The API's error messages follow Accept-Language (English by default); codes and types never
change with the language, on the native and the OpenAI-compatible API alike."""

from __future__ import annotations

import pytest

from generation.models import Job
from tests.conftest import Person, free_images_used_today, small_job

pytestmark = pytest.mark.django_db

NATIVE = "/api/v1/generations"
OPENAI = "/v1/images/generations"


@pytest.fixture
def no_wait(settings: object) -> None:
    settings.OPENAI_WAIT_SECONDS = 0  # type: ignore[attr-defined]


def refusal(person: Person, path: str, body: dict[str, object], **headers: str) -> dict:
    response = person.client().post(path, body, format="json", headers=headers)
    error = response.json()["error"]
    return {"status": response.status_code, **error}


@pytest.mark.parametrize(
    ("path", "body"),
    [(NATIVE, small_job()), (OPENAI, {"prompt": "a red circle", "size": "64x64"})],
)
def test_a_quota_refusal_is_in_french_when_asked_in_french_with_the_same_code(
    alice: Person, no_wait: None, path: str, body: dict[str, object]
) -> None:
    free_images_used_today(alice, 3)
    english = refusal(alice, path, body)
    asked_in_english = refusal(alice, path, body, accept_language="en-GB,en;q=0.9")
    french = refusal(alice, path, body, accept_language="fr-FR,fr;q=0.9,en;q=0.5")

    for error in (english, asked_in_english, french):
        assert (error["status"], error["code"], error["type"]) == (
            429,
            "quota_exceeded",
            "rate_limit_error",
        )
        assert error["limit"] == 3 and error["reset_at"] == english["reset_at"]
    assert english["message"].startswith("You have used all 3 images of your quota.")
    assert asked_in_english["message"] == english["message"]
    assert french["message"].startswith("Vous avez utilisé les 3 images de votre quota.")
    assert "Passez à une formule supérieure" not in english["message"]
    assert "You have" not in french["message"] and "Upgrade" not in french["message"]
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        (NATIVE, small_job(width=60), "width"),
        (OPENAI, {"prompt": "a red circle", "size": "60x64"}, "size"),
    ],
)
def test_a_validation_error_is_in_french_when_asked_in_french_with_the_same_code(
    alice: Person, no_wait: None, path: str, body: dict[str, object], param: str
) -> None:
    english = refusal(alice, path, body)
    french = refusal(alice, path, body, accept_language="fr")
    for error in (english, french):
        assert (error["status"], error["code"], error["type"], error["param"]) == (
            400,
            "invalid_request",
            "invalid_request_error",
            param,
        )
    assert english["message"] == f"{param}: Must be a multiple of 8."
    assert french["message"] == f"{param}: Doit être un multiple de 8."


def test_a_fields_own_limit_is_told_in_each_requests_language(alice: Person) -> None:
    """A DRF validator formats its message once and keeps it: each request's fields must have
    their own (as DRF's deep copy gives them), or the first language asked would answer all."""
    too_few = small_job(steps=0)
    first_english = refusal(alice, NATIVE, too_few)
    french = refusal(alice, NATIVE, too_few, accept_language="fr")
    english = refusal(alice, NATIVE, too_few)
    assert first_english["message"] == english["message"]
    assert english["message"] == "steps: Ensure this value is greater than or equal to 1."
    assert french["message"] == (
        "steps: Assurez-vous que cette valeur est supérieure ou égale à\u00a01."  # DRF's French
    )
    assert not Job.objects.exists()


def test_a_missing_field_uses_django_rest_frameworks_own_french(alice: Person) -> None:
    english = refusal(alice, NATIVE, {})
    french = refusal(alice, NATIVE, {}, accept_language="fr")
    assert english["code"] == french["code"] == "invalid_request"
    assert english["message"] == "prompt: This field is required."
    assert french["message"] == "prompt: Ce champ est obligatoire."


def test_a_language_we_do_not_speak_gets_english(alice: Person) -> None:
    free_images_used_today(alice, 3)
    error = refusal(alice, NATIVE, small_job(), accept_language="de-DE,de;q=0.9")
    assert error["message"].startswith("You have used all 3 images of your quota.")


def test_a_bad_key_is_refused_in_french_with_the_same_code(charlie: object) -> None:
    headers = {"authorization": "Bearer atl_nope_nope"}
    english = charlie.post(NATIVE, small_job(), format="json", headers=headers)  # type: ignore[attr-defined]
    french = charlie.post(  # type: ignore[attr-defined]
        NATIVE, small_job(), format="json", headers={**headers, "accept_language": "fr"}
    )
    assert english.status_code == french.status_code == 401
    assert english.json()["error"]["code"] == french.json()["error"]["code"] == "invalid_api_key"
    assert english.json()["error"]["message"] == "Incorrect API key provided."
    assert french.json()["error"]["message"] == "La clé d'API fournie est incorrecte."


def test_the_openapi_document_stays_english(charlie: object) -> None:
    english = charlie.get("/api/schema/?format=json")  # type: ignore[attr-defined]
    french = charlie.get("/api/schema/?format=json", headers={"accept_language": "fr"})  # type: ignore[attr-defined]
    assert english.status_code == french.status_code == 200
    assert french.content == english.content
    assert b"Ce champ" not in french.content
