"""The API's defaults and smallest size come from the model's metadata file (atelier.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.test import override_settings

from generation.model_info import METADATA_FILE, model_info
from tests.conftest import Person

pytestmark = pytest.mark.django_db


def small_model(tmp_path: Path) -> Path:
    folder = tmp_path / "small-model"
    folder.mkdir()
    metadata = {"native_size": 32, "recommended_steps": 6, "recommended_guidance": 2.5}
    (folder / METADATA_FILE).write_text(json.dumps(metadata))
    return folder


def test_a_job_without_parameters_gets_the_models_native_size_steps_and_guidance(
    alice: Person, tmp_path: Path
) -> None:
    with override_settings(GENERATION_MODEL=str(small_model(tmp_path))):
        response = alice.client().post("/api/v1/generations", {"prompt": "x"}, format="json")
    assert response.status_code == 202, response.content
    job = response.json()
    assert (job["width"], job["height"], job["steps"], job["guidance"]) == (32, 32, 6, 2.5)


def test_a_small_native_size_lowers_the_smallest_size_allowed(
    alice: Person, tmp_path: Path
) -> None:
    body = {"prompt": "x", "width": 32, "height": 40}
    with override_settings(GENERATION_MODEL=str(small_model(tmp_path))):
        response = alice.client().post("/api/v1/generations", body, format="json")
    assert response.status_code == 202, response.content


def test_a_model_without_metadata_keeps_the_general_defaults(alice: Person, tmp_path: Path) -> None:
    with override_settings(GENERATION_MODEL=str(tmp_path / "no-metadata")):
        refused = alice.client().post(
            "/api/v1/generations", {"prompt": "x", "width": 32}, format="json"
        )
        accepted = alice.client().post("/api/v1/generations", {"prompt": "x"}, format="json")
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "width"
    assert accepted.status_code == 202, accepted.content
    assert (accepted.json()["width"], accepted.json()["steps"]) == (512, 4)


def test_the_committed_demo_model_says_what_it_knows() -> None:
    info = model_info(str(Path(__file__).resolve().parents[2] / "models" / "atelier-demo"))
    assert info.native_size == 32
    assert 2 <= info.recommended_guidance <= 5
    assert "red" in info.vocabulary["colours"]
    assert info.min_size == 32
