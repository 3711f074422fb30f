"""The output safety check between render and store: a tiny StableDiffusionSafetyChecker
with known thresholds, loaded from its folder as a real one is, flags what it should; a
flagged job fails as output_refused, is refunded, stores nothing, and its batch-mates succeed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.core.files.storage import default_storage
from PIL import Image as PILImage

from billing.models import QuotaCounter
from generation import pipeline, safety, worker
from generation.models import Image, Job, OutputRefusal
from generation.queue import job_claim_batch
from tests.conftest import make_person, small_job
from tests.generation.safety_checker import tiny_checker_save

pytestmark = pytest.mark.django_db


def picture(seed: int, size: int = 64) -> PILImage.Image:
    """A picture of its own: coloured blocks drawn from `seed`."""
    blocks = np.random.default_rng(seed).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    return PILImage.fromarray(blocks).resize((size, size), PILImage.Resampling.NEAREST)


UNSAFE, SAFE = picture(1), [picture(2), picture(3), picture(4)]


@pytest.fixture
def checker(tmp_path: Path, settings: Any) -> Path:
    folder = tiny_checker_save(tmp_path / "safety-checker", unsafe=UNSAFE, safe=SAFE)
    settings.SAFETY_CHECKER_MODEL = str(folder)
    return folder


def test_the_checker_loaded_from_its_folder_flags_the_unsafe_image_only(checker: Path) -> None:
    flags = pipeline.safety_flags(
        [SAFE[0], UNSAFE, SAFE[1], SAFE[2]], adjustments=[0.0] * 4, folder=str(checker)
    )
    assert flags == [False, True, False, False]
    loaded, _ = pipeline.load_safety_checker(str(checker))
    assert type(loaded).__name__ == "StableDiffusionSafetyChecker"
    assert next(loaded.parameters()).device == pipeline.pick_device()  # the model's device


def test_the_strict_level_flags_what_the_standard_level_passes(tmp_path: Path) -> None:
    borderline = picture(3)
    folder = tiny_checker_save(tmp_path / "c", unsafe=UNSAFE, borderline=borderline)
    standard = safety.level_adjustment("standard")
    strict = safety.level_adjustment("strict")
    flags = pipeline.safety_flags(
        [borderline, borderline, UNSAFE],
        adjustments=[standard, strict, standard],
        folder=str(folder),
    )
    assert flags == [False, True, True]


def test_a_flagged_image_fails_its_job_and_its_batch_mates_succeed(
    checker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    people = [make_person(f"p{i}@example.com", plan="pro") for i in range(3)]
    drawn = {"a calm lake": SAFE[0], "something unsafe": UNSAFE, "a quiet street": SAFE[1]}
    for person, prompt in zip(people, drawn, strict=True):
        response = person.client().post(
            "/api/v1/generations", small_job(prompt=prompt), format="json"
        )
        assert response.status_code == 202, response.content

    def run_batch(spec: object, items: list, **kwargs: object) -> list[PILImage.Image]:
        return [drawn[item.prompt].copy() for item in items]  # the GPU, faked: known pictures

    monkeypatch.setattr(pipeline, "run_batch", run_batch)
    batch = job_claim_batch(worker="w1", lanes=["priority", "standard", "free"], max_images=8)
    assert len(batch) == 3  # one batch, one check
    worker.run_batch(batch, worker="w1")

    jobs = {job.prompt: job for job in Job.objects.all()}
    refused = jobs["something unsafe"]
    assert refused.status == Job.Status.FAILED
    assert refused.error_code == "output_refused"
    assert refused.error_message == safety.OUTPUT_REFUSED_MESSAGE
    assert not Image.objects.filter(job=refused).exists()
    folder = f"images/{refused.workspace_id}/{refused.id}"
    assert not default_storage.exists(folder) or default_storage.listdir(folder) == ([], [])
    for prompt in ("a calm lake", "a quiet street"):
        assert jobs[prompt].status == Job.Status.SUCCEEDED
        assert Image.objects.filter(job=jobs[prompt]).count() == 1
    used = {c.workspace_id: c.used for c in QuotaCounter.objects.all()}
    assert used[refused.workspace_id] == 0  # refunded
    assert sorted(used.values()) == [0, 1, 1]
    review = OutputRefusal.objects.get()
    assert (review.job, review.prompt, review.workspace_id) == (
        refused,
        "something unsafe",
        refused.workspace_id,
    )

    # Its owner reads the stable code and the kind message; never an image.
    response = people[1].client().get(f"/api/v1/generations/{refused.id}")
    body = response.json()
    assert body["status"] == "failed"
    assert body["images"] == []
    assert body["error_code"] == "output_refused"
    assert body["error_message"] == safety.OUTPUT_REFUSED_MESSAGE


def test_without_a_checker_nothing_is_checked(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.SAFETY_CHECKER_MODEL = ""
    monkeypatch.setattr(pipeline, "safety_flags", lambda *a, **k: pytest.fail("checked"))
    assert safety.outputs_flagged(pipeline, [], []) == {}


def test_a_flagged_preview_is_never_published(checker: Path) -> None:
    """Streamed partial images pass the same check before anyone sees them."""
    jobs = [Job(num_images=1, moderation_level="standard") for _ in range(2)]
    published: list[int] = []
    checked = safety.previews_checked(
        pipeline, jobs, lambda step, item, picture: published.append(item)
    )
    checked(3, 0, SAFE[0])
    checked(3, 1, UNSAFE)
    assert published == [0]
