"""The official `openai` package asking in French or in English (Accept-Language): the same
error classes and codes, the message in the language asked for."""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator

import openai
import pytest
from django.apps import apps as django_apps

from generation.models import Job
from tests.conftest import Person, free_images_used_today, make_person

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# (Accept-Language, the start of a quota refusal, of a size refused, of a policy refusal)
LANGUAGES = [
    (None, "You have used all 3 images", "size: Must be a multiple of 8.", "This request was"),
    ("en-US,en;q=0.9", "You have used all 3 images", "size: Must be a multiple", "This request"),
    ("fr-FR,fr;q=0.9", "Vous avez utilisé les 3 images", "size: Doit être un multiple", "Cette"),
]


@contextlib.contextmanager
def client_for(live_server: object, key: str, language: str | None) -> Iterator[openai.OpenAI]:
    headers = {"Accept-Language": language} if language else {}
    with openai.OpenAI(
        base_url=f"{live_server.url}/v1",  # type: ignore[attr-defined]
        api_key=key,
        max_retries=0,
        timeout=60,
        default_headers=headers,
    ) as client:
        yield client


@pytest.fixture
def erin(db: None) -> Person:
    for name, function in (
        ("0005_starting_policy_rules", "create_rules"),
        ("0010_starting_policy_rules_in_french", "create_translations"),
    ):  # the shipped rules (transactional tests flush what the migrations made)
        migration = importlib.import_module(f"generation.migrations.{name}")
        getattr(migration, function)(django_apps, None)
    return make_person("erin@example.com")


@pytest.mark.parametrize(("language", "quota", "size", "policy"), LANGUAGES)
def test_the_same_error_classes_in_every_language(
    live_server: object, erin: Person, language: str | None, quota: str, size: str, policy: str
) -> None:
    with client_for(live_server, erin.key, language) as client:
        with pytest.raises(openai.BadRequestError) as bad_size:
            client.images.generate(prompt="a red circle", size="60x64")
        with pytest.raises(openai.BadRequestError) as refused:
            client.images.generate(prompt="un portrait à la manière de Loish", size="64x64")
        free_images_used_today(erin, 3)
        with pytest.raises(openai.RateLimitError) as used_up:
            client.images.generate(prompt="a red circle", size="64x64")

    assert (bad_size.value.code, bad_size.value.param) == ("invalid_request", "size")
    assert bad_size.value.body["message"].startswith(size)
    assert (refused.value.code, refused.value.param) == ("policy_refused", "prompt")
    assert refused.value.body["message"].startswith(policy)
    assert used_up.value.code == "quota_exceeded"
    assert used_up.value.body["type"] == "rate_limit_error"
    assert used_up.value.body["message"].startswith(quota)
    assert not Job.objects.exists()
