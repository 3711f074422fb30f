"""The official `openai` package against a live server, a real worker and the demo model."""

from __future__ import annotations

import base64
import contextlib
import io
from collections.abc import Iterator

import openai
import pytest
import requests
from PIL import Image as PILImage

from billing.models import QuotaCounter
from generation.models import Job, PolicyRule
from generation.openai_api import served_model_id
from tests.conftest import Person, free_images_used_today, make_person
from tests.e2e.conftest import WorkerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PROMPT = "a red circle on a gray background"


@contextlib.contextmanager
def client_for(live_server: object, key: str) -> Iterator[openai.OpenAI]:
    # No retries: every refusal must surface as it is. Closed after use, so that the live
    # server's threads (and their database connections) end with the test.
    with openai.OpenAI(
        base_url=f"{live_server.url}/v1",  # type: ignore[attr-defined]
        api_key=key,
        max_retries=0,
        timeout=180,
    ) as client:
        yield client


@pytest.fixture
def dana(db: None) -> Person:
    return make_person("dana@example.com")


def png(data: bytes) -> PILImage.Image:
    picture = PILImage.open(io.BytesIO(data))
    assert picture.format == "PNG"
    return picture


def test_images_generate_returns_the_png_as_b64_json_and_as_a_url(
    live_server: object, celery_worker: WorkerProcess, dana: Person
) -> None:
    with client_for(live_server, dana.key) as client:
        generate_both_ways(client)
    jobs = Job.objects.filter(workspace=dana.workspace)
    assert sorted(job.status for job in jobs) == [Job.Status.SUCCEEDED] * 2
    assert QuotaCounter.objects.get(workspace=dana.workspace).used == 2


def generate_both_ways(client: openai.OpenAI) -> None:
    assert [model.id for model in client.models.list()] == [served_model_id()]

    result = client.images.generate(
        model=served_model_id(), prompt=PROMPT, size="64x96", response_format="b64_json"
    )
    [image] = result.data
    picture = png(base64.b64decode(image.b64_json))
    assert picture.size == (64, 96)
    assert picture.text["ai-generated"] == "true"
    assert result.created > 0

    # The default format is a URL that works without the key (as OpenAI's do).
    [linked] = client.images.generate(prompt=PROMPT, size="64x64").data
    download = requests.get(linked.url, timeout=10)
    assert download.status_code == 200
    assert png(download.content).size == (64, 64)


def test_images_edit_redraws_the_uploaded_photo(
    live_server: object, celery_worker: WorkerProcess, dana: Person
) -> None:
    buffer = io.BytesIO()
    PILImage.new("RGB", (96, 64), (200, 30, 30)).save(buffer, format="PNG")
    with client_for(live_server, dana.key) as client:
        result = client.images.edit(
            image=("photo.png", buffer.getvalue(), "image/png"),
            prompt="a blue circle on a gray background",
            response_format="b64_json",
            extra_body={"strength": 0.5, "seed": 3},
        )
    [image] = result.data
    assert png(base64.b64decode(image.b64_json)).size == (96, 64)
    job = Job.objects.get(workspace=dana.workspace)
    assert (job.kind, job.status, job.strength, job.seed) == (
        Job.Kind.EDIT,
        Job.Status.SUCCEEDED,
        0.5,
        3,
    )


def test_an_exhausted_quota_raises_rate_limit_error(
    live_server: object, celery_worker: WorkerProcess, dana: Person
) -> None:
    free_images_used_today(dana, 3)
    with (
        client_for(live_server, dana.key) as client,
        pytest.raises(openai.RateLimitError) as refused,
    ):
        client.images.generate(prompt=PROMPT, size="64x64")
    assert refused.value.code == "quota_exceeded"
    assert refused.value.response.headers["Retry-After"]
    assert not Job.objects.exists()


def test_a_refused_prompt_raises_bad_request_error(
    live_server: object, celery_worker: WorkerProcess, dana: Person
) -> None:
    PolicyRule.objects.create(
        term="Greg Rutkowski",
        reason="Prompts may not imitate a living artist.",
        suggestion="Describe the style instead.",
        replacement="in a painterly fantasy style",
    )
    with (
        client_for(live_server, dana.key) as client,
        pytest.raises(openai.BadRequestError) as refused,
    ):
        client.images.generate(prompt="a castle in the style of Greg Rutkowski", size="64x64")
    assert (refused.value.code, refused.value.param) == ("policy_refused", "prompt")
    assert refused.value.body["suggested_prompt"] == "a castle in a painterly fantasy style"
    assert not Job.objects.exists()


def test_a_bad_key_raises_authentication_error(
    live_server: object, celery_worker: WorkerProcess
) -> None:
    with (
        client_for(live_server, "atl_wrong") as client,
        pytest.raises(openai.AuthenticationError) as refused,
    ):
        client.images.generate(prompt=PROMPT, size="64x64")
    assert refused.value.code == "invalid_api_key"


def test_input_beyond_the_plan_raises_bad_request_error(
    live_server: object, celery_worker: WorkerProcess, dana: Person
) -> None:
    with (
        client_for(live_server, dana.key) as client,
        pytest.raises(openai.BadRequestError) as refused,
    ):
        client.images.generate(prompt=PROMPT, size="1024x1024")
    assert refused.value.param == "size"
