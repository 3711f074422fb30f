"""The OpenAI-compatible API in-process (no worker): admission, errors, models, signed URLs."""

from __future__ import annotations

import base64
import io
from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import pytest
import time_machine
from django.core.files.base import ContentFile
from django.test import RequestFactory
from django.utils import timezone
from PIL import Image as PILImage
from rest_framework.test import APIClient

from billing.models import Plan, QuotaCounter
from generation.models import Image, Job, PolicyRule
from generation.openai_api import image_data, served_model_id
from tests.conftest import Person, free_images_used_today

pytestmark = pytest.mark.django_db

GENERATIONS = "/v1/images/generations"


def openai_body(**overrides: object) -> dict[str, object]:
    return {"prompt": "a red circle on a gray background", "size": "64x64", **overrides}


@pytest.fixture
def no_wait(settings: object) -> None:
    """No worker runs here: give up on a job at once."""
    settings.OPENAI_WAIT_SECONDS = 0  # type: ignore[attr-defined]


def used_today(person: Person) -> int:
    return sum(
        QuotaCounter.objects.filter(workspace=person.workspace).values_list("used", flat=True)
    )


def test_a_job_that_does_not_start_in_time_is_cancelled_and_costs_nothing(
    alice: Person, no_wait: None
) -> None:
    response = alice.client().post(GENERATIONS, openai_body(), format="json")
    assert response.status_code == 503, response.content
    assert response.json()["error"]["code"] == "generation_timeout"
    assert int(response["Retry-After"]) > 0
    job = Job.objects.get(workspace=alice.workspace)
    assert job.status == Job.Status.CANCELLED
    assert (job.width, job.height, job.num_images) == (64, 64, 1)
    assert used_today(alice) == 0


def test_openai_parameters_become_the_native_ones(alice: Person, no_wait: None) -> None:
    Plan.objects.filter(slug="free").update(images_per_request=2)
    body = openai_body(
        model="dall-e-3", n=2, size="128x64", quality="standard", user="u-1", seed=5, steps=2,
        output_format="webp", output_compression=50,
    )  # fmt: skip
    alice.client().post(GENERATIONS, body, format="json")
    job = Job.objects.get(workspace=alice.workspace)
    assert (job.width, job.height, job.num_images, job.seed, job.steps) == (128, 64, 2, 5, 2)
    assert job.kind == Job.Kind.TEXT_TO_IMAGE
    assert (job.output_format, job.output_compression, job.partial_images) == ("webp", 50, 0)


@pytest.mark.parametrize(
    "body,param",
    [
        (openai_body(n=2), "n"),
        (openai_body(size="1024x1024"), "size"),
        (openai_body(size="big"), "size"),
        (openai_body(size="100x64"), "size"),
        (openai_body(model="stable-diffusion-9"), "model"),
        (openai_body(response_format="gif"), "response_format"),
        (openai_body(output_format="gif"), "output_format"),
        (openai_body(output_compression=101), "output_compression"),
        (openai_body(stream="maybe"), "stream"),
        (openai_body(stream=True, partial_images=4), "partial_images"),
        (openai_body(background="transparent"), "background"),
        (openai_body(frame_count=3), "frame_count"),
        (openai_body(prompt=""), "prompt"),
        (openai_body(colour="red"), "colour"),
    ],
)
def test_bad_input_is_a_400_naming_the_openai_parameter(
    alice: Person, body: dict[str, object], param: str
) -> None:
    response = alice.client().post(GENERATIONS, body, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert (error["type"], error["code"], error["param"]) == (
        "invalid_request_error",
        "invalid_request",
        param,
    )
    assert not Job.objects.exists()


def test_the_fourth_image_of_the_day_is_a_429_the_client_should_not_retry(
    alice: Person, no_wait: None
) -> None:
    free_images_used_today(alice, 3)
    response = alice.client().post(GENERATIONS, openai_body(), format="json")
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "quota_exceeded"
    assert response.json()["error"]["type"] == "rate_limit_error"
    assert response["x-should-retry"] == "false"
    assert int(response["Retry-After"]) > 0
    assert not Job.objects.exists()


def test_the_native_rate_limit_counts_openai_requests_too(alice: Person, no_wait: None) -> None:
    client = alice.client()
    for _ in range(5):  # the free plan: 5 requests a minute, across both APIs
        client.post("/api/v1/generations", {"prompt": "a square"}, format="json")
    response = client.post(GENERATIONS, openai_body(), format="json")
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limit_exceeded"


def test_a_prompt_the_policy_refuses_is_a_400_as_openai_answers_it(alice: Person) -> None:
    PolicyRule.objects.create(
        term="Greg Rutkowski", reason="No living artists.", suggestion="Describe the style."
    )
    body = openai_body(prompt="a castle by Greg Rutkowski")
    openai_answer = alice.client().post(GENERATIONS, body, format="json")
    native_answer = alice.client().post(
        "/api/v1/generations", {"prompt": body["prompt"]}, format="json"
    )
    assert (openai_answer.status_code, native_answer.status_code) == (400, 422)
    assert openai_answer.json()["error"]["code"] == "policy_refused"
    assert openai_answer.json()["error"]["param"] == "prompt"
    assert not Job.objects.exists()


def test_a_suspended_workspace_is_refused(alice: Person) -> None:
    alice.workspace.suspended_at = timezone.now()
    alice.workspace.save()
    response = alice.client().post(GENERATIONS, openai_body(), format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "workspace_suspended"


def test_charlie_and_a_bad_key_get_401_in_the_error_shape(charlie: APIClient) -> None:
    anonymous = charlie.post(GENERATIONS, openai_body(), format="json")
    charlie.credentials(HTTP_AUTHORIZATION="Bearer atl_not-a-key")
    wrong = charlie.post(GENERATIONS, openai_body(), format="json")
    models = charlie.get("/v1/models")
    for response in (anonymous, wrong, models):
        assert response.status_code == 401
        assert response.json()["error"]["type"] == "authentication_error"
    assert wrong.json()["error"]["code"] == "invalid_api_key"


def test_other_methods_are_a_405_in_the_error_shape(alice: Person) -> None:
    response = alice.client().get(GENERATIONS)
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_models_lists_the_served_model(alice: Person) -> None:
    client = alice.client()
    listing = client.get("/v1/models").json()
    assert listing["object"] == "list"
    assert [m["id"] for m in listing["data"]] == [served_model_id()]
    assert listing["data"][0]["object"] == "model"
    assert client.get(f"/v1/models/{served_model_id()}").status_code == 200
    missing = client.get("/v1/models/gpt-4o")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "model_not_found"


@pytest.fixture
def alices_image(alice: Person) -> Image:
    job = Job.objects.create(
        workspace=alice.workspace, model="m", prompt="p", width=64, height=64, steps=1,
        guidance=1.0, seed=1, status=Job.Status.SUCCEEDED,
    )  # fmt: skip
    image = Image(job=job, workspace=alice.workspace, index=0, width=64, height=64, seed=1)
    image.file.save("0.png", ContentFile(b"\x89PNG alice's picture"), save=True)
    return image


def test_b64_json_carries_the_png(alices_image: Image) -> None:
    data = image_data(RequestFactory().get("/"), alices_image, "b64_json")
    assert base64.b64decode(data["b64_json"]) == b"\x89PNG alice's picture"


def test_a_signed_url_works_without_a_key_until_it_expires(
    alices_image: Image, charlie: APIClient
) -> None:
    url = image_data(RequestFactory().get("/"), alices_image, "url")["url"]
    assert urlparse(url).path == f"/v1/images/content/{alices_image.id}"
    download = charlie.get(url)
    assert download.status_code == 200
    assert download["Content-Type"] == "image/png"
    assert b"".join(download.streaming_content) == b"\x89PNG alice's picture"

    with time_machine.travel(timezone.now() + timedelta(hours=2)):
        expired = charlie.get(url)
    assert expired.status_code == 403
    assert expired.json()["error"]["code"] == "url_expired"


def test_a_signed_url_opens_only_its_own_image(
    alices_image: Image, bob: Person, charlie: APIClient
) -> None:
    url = image_data(RequestFactory().get("/"), alices_image, "url")["url"]
    token = parse_qs(urlparse(url).query)["token"][0]
    other = Image.objects.create(
        job=alices_image.job, workspace=alices_image.workspace, index=1, width=64, height=64,
        seed=2, file="images/other.png",
    )  # fmt: skip
    for response in (
        charlie.get(f"/v1/images/content/{other.id}?token={token}"),
        charlie.get(f"/v1/images/content/{alices_image.id}?token=x{token}"),
        charlie.get(f"/v1/images/content/{alices_image.id}"),
        bob.client().get(f"/v1/images/content/{alices_image.id}"),
    ):
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "invalid_signature"


EDITS = "/v1/images/edits"


def photo(size: tuple[int, int] = (96, 64)) -> io.BytesIO:
    buffer = io.BytesIO()
    PILImage.new("RGB", size, (200, 30, 30)).save(buffer, format="PNG")
    buffer.seek(0)
    buffer.name = "photo.png"
    return buffer


def mask_png(size: tuple[int, int] = (96, 64)) -> io.BytesIO:
    """A mask as OpenAI defines it: transparent (alpha 0) where to repaint."""
    mask = PILImage.new("RGBA", size, (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (16, 16, 48, 48))
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    buffer.seek(0)
    buffer.name = "mask.png"
    return buffer


def test_a_masked_edit_keeps_its_mask_white_where_the_model_repaints(
    alice: Person, no_wait: None
) -> None:
    body = {"prompt": "make it blue", "image": photo(), "mask": mask_png()}
    alice.client().post(EDITS, body, format="multipart")
    job = Job.objects.get(workspace=alice.workspace)
    with job.mask_image.open("rb") as file:
        mask = PILImage.open(file)
        mask.load()
    assert (mask.mode, mask.size) == ("L", (96, 64))
    assert mask.getpixel((20, 20)) == 255 and mask.getpixel((60, 20)) == 0
    assert job.batch_key[-1] is True


def test_an_edit_takes_the_native_edit_path(alice: Person, no_wait: None) -> None:
    body = {"prompt": "make it blue", "image": photo(), "strength": "0.4", "n": "1"}
    response = alice.client().post(EDITS, body, format="multipart")
    assert response.status_code == 503, response.content  # no worker here: cancelled
    job = Job.objects.get(workspace=alice.workspace)
    assert job.kind == Job.Kind.EDIT
    assert (job.width, job.height, job.strength) == (96, 64, 0.4)
    assert job.source_image.name
    assert used_today(alice) == 0


def test_the_openai_package_list_form_of_image_is_accepted(alice: Person, no_wait: None) -> None:
    body = {"prompt": "make it blue", "image[]": photo()}
    alice.client().post(EDITS, body, format="multipart")
    assert Job.objects.get(workspace=alice.workspace).kind == Job.Kind.EDIT


@pytest.mark.parametrize(
    "body,param",
    [
        ({"prompt": "make it blue"}, "image"),
        ({"prompt": "make it blue", "image": io.BytesIO(b"not a picture")}, "image"),
        ({"prompt": "make it blue", "image[]": [photo(), photo()]}, "image"),
        ({"prompt": "make it blue", "image": photo(), "mask": photo()}, "mask"),
        ({"prompt": "make it blue", "image": photo(), "mask": mask_png((64, 64))}, "mask"),
        ({"prompt": "make it blue", "image": photo(), "image[]": photo()}, "image"),
        ({"prompt": "make it blue", "image": photo(), "size": "1024x1024"}, "size"),
        ({"prompt": "make it blue", "image": photo(), "n": "3"}, "n"),
    ],
)
def test_bad_edits_are_a_400_naming_the_openai_parameter(
    alice: Person, body: dict[str, object], param: str
) -> None:
    response = alice.client().post(EDITS, body, format="multipart")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["param"] == param
    assert not Job.objects.exists()


def test_an_edit_as_json_is_a_415(alice: Person) -> None:
    response = alice.client().post(EDITS, {"prompt": "make it blue"}, format="json")
    assert response.status_code == 415
    assert response.json()["error"]["type"] == "invalid_request_error"
