"""A stand-in for generation.pipeline, for bench/overload.py only.

It spends a fixed simulated GPU time per image (ATELIER_SIMULATED_SECONDS_PER_IMAGE) and
returns grey pictures, so that the benchmark measures queueing, admission and fairness on
machines without a GPU. Selected with GENERATION_PIPELINE_MODULE=bench.simulated_pipeline;
nothing outside the benchmark uses it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence

from PIL import Image as PILImage

# The real request types, so that the worker builds its batches exactly as in production.
from generation.pipeline import BatchItem, BatchSpec, Interrupted, preview_steps

__all__ = [
    "BatchItem", "BatchSpec", "Interrupted", "is_out_of_memory", "preview_steps", "run_batch",
    "warm_up",
]  # fmt: skip

SECONDS_PER_IMAGE = float(os.environ.get("ATELIER_SIMULATED_SECONDS_PER_IMAGE", "0.5"))


def is_out_of_memory(exc: BaseException) -> bool:
    return False


def run_batch(
    spec: BatchSpec,
    items: list[BatchItem],
    *,
    model: str | None = None,
    on_step: Callable[[int], bool] | None = None,
    previews: Mapping[int, Sequence[int]] | None = None,
    on_preview: Callable[[int, int, PILImage.Image], None] | None = None,
) -> list[PILImage.Image]:
    step_time = SECONDS_PER_IMAGE * len(items) / spec.steps
    for step in range(1, spec.steps + 1):
        time.sleep(step_time)
        for item in (previews or {}).get(step, ()):
            if on_preview is not None:
                on_preview(step, item, PILImage.new("RGB", (spec.width, spec.height), "gray"))
        if on_step is not None and not on_step(step):
            raise Interrupted()
    return [PILImage.new("RGB", (spec.width, spec.height), "gray") for _ in items]


def warm_up(model: str | None = None) -> None:
    return None
