from __future__ import annotations

import pytest

from billing.models import QuotaCounter
from generation.models import Job
from tests.conftest import Person, make_person, small_job

pytestmark = pytest.mark.django_db

BAD_BODIES = {
    "empty prompt": (small_job(prompt=""), "prompt"),
    "blank prompt": (small_job(prompt="   "), "prompt"),
    "10,000-character prompt": (small_job(prompt="x" * 10_000), "prompt"),
    "width not a multiple of 8": (small_job(width=100), "width"),
    "height beyond the plan": (small_job(height=1024), "height"),
    "tiny width": (small_job(width=8), "width"),
    "negative steps": (small_job(steps=-1), "steps"),
    "steps beyond the plan": (small_job(steps=500), "steps"),
    "too many images for the plan": (small_job(num_images=2), "num_images"),
    "negative seed": (small_job(seed=-5), "seed"),
    "string width": (small_job(width="wide"), "width"),
    "unknown field": (small_job(style="oil"), "style"),
    "missing prompt": ({"width": 64, "height": 64}, "prompt"),
}


@pytest.mark.parametrize("body,param", BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_bad_input_is_a_400_that_creates_nothing(
    alice: Person, body: dict[str, object], param: str
) -> None:
    response = alice.client().post("/api/v1/generations", body, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "invalid_request"
    assert error["param"] == param
    assert error["message"]
    assert Job.objects.count() == 0
    assert not QuotaCounter.objects.filter(used__gt=0).exists()


def test_a_body_that_is_not_json_is_a_400(alice: Person) -> None:
    response = alice.client().post(
        "/api/v1/generations", b"{prompt: nope", content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"
    assert Job.objects.count() == 0


def test_a_json_array_is_a_400(alice: Person) -> None:
    response = alice.client().post("/api/v1/generations", ["a prompt"], format="json")
    assert response.status_code == 400
    assert Job.objects.count() == 0


def test_paid_plans_allow_bigger_requests() -> None:
    pro = make_person("pat@example.com", plan="pro")
    body = small_job(width=1024, height=768, steps=30, num_images=4)
    response = pro.client().post("/api/v1/generations", body, format="json")
    assert response.status_code == 202, response.content
    assert response.json()["lane"] == "priority"
