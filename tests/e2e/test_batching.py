"""Micro-batching must not change anyone's picture: each image depends on its own prompt
and seed only. Runs the real demo model in the test process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from generation.images import encode_png

pipeline = pytest.importorskip("generation.pipeline")

SPEC = {"width": 64, "height": 64, "steps": 4, "guidance": 3.0}
PROMPTS = [
    ("a red circle on a gray background", 3),
    ("a blue square on a white background", 99),
    ("a green triangle on a black background", 12345),
    ("a yellow circle on a blue background", 7),
]
TOLERANCE = 4  # levels of 255: batched kernels round differently


def max_difference(a: PILImage.Image, b: PILImage.Image) -> int:
    return int(np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16)).max())


def png(image: PILImage.Image) -> bytes:
    return encode_png(image, provenance={"seed": "fixed"})


def test_batched_and_unbatched_text_to_image_agree_and_repeat_exactly(demo_model: Path) -> None:
    spec = pipeline.BatchSpec(**SPEC)
    items = [pipeline.BatchItem(prompt, "", seed) for prompt, seed in PROMPTS]
    batched = pipeline.run_batch(spec, items, model=str(demo_model))
    alone = [pipeline.run_batch(spec, [item], model=str(demo_model))[0] for item in items]
    for together, single in zip(batched, alone, strict=True):
        assert max_difference(together, single) <= TOLERANCE
    # Different prompts and seeds give different pictures: the batch did not mix them up.
    assert max_difference(batched[0], batched[1]) > 20

    again = pipeline.run_batch(spec, items, model=str(demo_model))
    assert [png(image) for image in again] == [png(image) for image in batched]


def test_batched_and_unbatched_edits_agree(demo_model: Path) -> None:
    spec = pipeline.BatchSpec(**SPEC, strength=0.7)
    sources = [PILImage.new("RGB", (64, 64), colour) for colour in ("red", "blue")]
    items = [
        pipeline.BatchItem("a green circle on a gray background", "", 5, sources[0]),
        pipeline.BatchItem("a white square on a black background", "", 6, sources[1]),
    ]
    batched = pipeline.run_batch(spec, items, model=str(demo_model))
    alone = [pipeline.run_batch(spec, [item], model=str(demo_model))[0] for item in items]
    for together, single in zip(batched, alone, strict=True):
        assert together.size == (64, 64)
        assert max_difference(together, single) <= TOLERANCE
