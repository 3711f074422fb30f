"""Streamed images (`stream=true`, `partial_images`) through the `openai` package, the web
server as shipped (gunicorn, ASGI) and a real worker: previews, then the image, in OpenAI's
event shapes; a refused request raises before any event."""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import requests
from PIL import Image as PILImage

from billing.models import QuotaCounter
from generation.models import Job
from tests.conftest import Person, free_images_used_today, make_person
from tests.e2e.conftest import WorkerProcess
from tests.e2e.test_openai_images_outputs import noise_photo, openai_mask, png_bytes
from tests.e2e.web_server import web_server

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PROMPT = "a red circle on a gray background"


@pytest.fixture
def client(tmp_path: Path, db: None) -> Iterator[tuple[openai.OpenAI, Person]]:
    dana = make_person("dana@example.com")
    with (
        web_server(tmp_path / "web.log", workers=1) as url,
        openai.OpenAI(base_url=f"{url}/v1", api_key=dana.key, max_retries=0, timeout=180) as sdk,
    ):
        yield sdk, dana


def decoded(b64: str) -> PILImage.Image:
    return PILImage.open(io.BytesIO(base64.b64decode(b64)))


def test_a_streamed_generation_sends_two_partial_images_then_the_image(
    client: tuple[openai.OpenAI, Person], celery_worker: WorkerProcess
) -> None:
    sdk, dana = client
    stream = sdk.images.generate(
        prompt=PROMPT, size="64x64", stream=True, partial_images=2, output_format="jpeg"
    )
    events = list(stream)
    assert [event.type for event in events] == [
        "image_generation.partial_image",
        "image_generation.partial_image",
        "image_generation.completed",
    ]
    assert [event.partial_image_index for event in events[:2]] == [0, 1]
    for event in events:
        assert (event.size, event.output_format) == ("64x64", "jpeg")
        assert decoded(event.b64_json).format == "JPEG"
    assert events[-1].usage.output_tokens == 1
    # The previews are of the image in the making, not the image itself.
    assert events[0].b64_json != events[-1].b64_json
    job = Job.objects.get(workspace=dana.workspace)
    assert (job.status, job.partial_images) == (Job.Status.SUCCEEDED, 2)
    assert QuotaCounter.objects.get(workspace=dana.workspace).used == 1


def test_a_streamed_masked_edit_sends_two_partial_images_then_the_edit(
    client: tuple[openai.OpenAI, Person], celery_worker: WorkerProcess
) -> None:
    sdk, dana = client
    stream = sdk.images.edit(
        image=("photo.png", png_bytes(noise_photo()), "image/png"),
        mask=("mask.png", openai_mask(), "image/png"),
        prompt="a blue circle on a white background",
        stream=True,
        partial_images=2,
    )
    events = list(stream)
    assert [event.type for event in events] == [
        "image_edit.partial_image",
        "image_edit.partial_image",
        "image_edit.completed",
    ]
    assert [event.partial_image_index for event in events[:2]] == [0, 1]
    assert decoded(events[-1].b64_json).size == (96, 64)
    assert Job.objects.get(workspace=dana.workspace).status == Job.Status.SUCCEEDED


def test_a_stream_over_quota_raises_rate_limit_error_before_any_event(
    client: tuple[openai.OpenAI, Person], celery_worker: WorkerProcess
) -> None:
    sdk, dana = client
    free_images_used_today(dana, 3)
    with pytest.raises(openai.RateLimitError) as refused:
        sdk.images.generate(prompt=PROMPT, size="64x64", stream=True, partial_images=2)
    assert refused.value.code == "quota_exceeded"
    assert not Job.objects.exists()


def test_a_stream_whose_image_is_not_ready_in_time_ends_with_an_error_and_costs_nothing(
    tmp_path: Path, celery_worker: WorkerProcess
) -> None:
    # A paid plan's job goes to the priority lane, which the suite's shared worker does not
    # serve: it stays queued past OPENAI_WAIT_SECONDS.
    pat = make_person("pat@example.com", plan="pro")
    with (
        web_server(tmp_path / "web.log", workers=1, OPENAI_WAIT_SECONDS="2") as url,
        openai.OpenAI(base_url=f"{url}/v1", api_key=pat.key, max_retries=0, timeout=60) as sdk,
    ):
        stream = sdk.images.generate(prompt=PROMPT, size="64x64", stream=True, partial_images=1)
        with pytest.raises(openai.APIError) as ended:
            list(stream)
    assert ended.value.code == "generation_timeout"  # type: ignore[attr-defined]
    job = Job.objects.get(workspace=pat.workspace)
    assert job.status == Job.Status.CANCELLED
    assert not QuotaCounter.objects.filter(workspace=pat.workspace, used__gt=0).exists()


def test_a_stream_the_client_leaves_cancels_its_job_which_costs_nothing(
    tmp_path: Path, celery_worker: WorkerProcess
) -> None:
    pat = make_person("pat@example.com", plan="pro")  # priority lane: it stays queued
    with web_server(tmp_path / "web.log", workers=1, EVENTS_KEEPALIVE_SECONDS="1") as url:
        response = requests.post(
            f"{url}/v1/images/generations",
            json={"prompt": PROMPT, "size": "64x64", "stream": True, "partial_images": 1},
            headers={"Authorization": f"Bearer {pat.key}"},
            stream=True,
            timeout=30,
        )
        assert response.headers["Content-Type"] == "text/event-stream"
        assert next(response.iter_lines()) == b": keepalive"
        job = Job.objects.get(workspace=pat.workspace)
        assert job.status == Job.Status.QUEUED
        response.close()
        deadline = time.monotonic() + 20
        while job.status == Job.Status.QUEUED and time.monotonic() < deadline:
            time.sleep(0.2)
            job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED
    assert not QuotaCounter.objects.filter(workspace=pat.workspace, used__gt=0).exists()
