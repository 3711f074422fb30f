"""SimulatedGpu: a stand-in for generation.pipeline, for bench/worker_host.py only.

It does not render: it sleeps the time a GPU would take for the batch (SECONDS_PER_IMAGE x
images, ATELIER_SIMULATED_GPU_MS_PER_IMAGE, default 7 ms: 145 images/s) and returns real
pictures of the requested size, photo-like (smooth shapes, detail and sensor-like noise, so
that they compress as a rendered image does, not as a flat fill or pure noise), copied to
the host in one array per batch as generation.pipeline.pictures_of does. It records how long
the "GPU" was busy, so that the benchmark can tell how long it waited for the host.
Selected with GENERATION_PIPELINE_MODULE=bench.simulated_gpu; nothing else uses it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from PIL import Image as PILImage

# The real request types, so that the worker builds its batches exactly as in production.
from generation.pipeline import BatchItem, BatchSpec, Interrupted, preview_steps

__all__ = [
    "BatchItem", "BatchSpec", "Interrupted", "is_out_of_memory", "preview_steps", "run_batch",
    "warm_up",
]  # fmt: skip

SECONDS_PER_IMAGE = float(os.environ.get("ATELIER_SIMULATED_GPU_MS_PER_IMAGE", "7")) / 1000
DISTINCT_PICTURES = 8

_lock = threading.Lock()
_pictures: dict[tuple[int, int], np.ndarray] = {}
busy_seconds = 0.0  # time spent "rendering", summed over batches


def photo_like(seed: int, width: int, height: int) -> np.ndarray:
    """A height x width x 3 uint8 picture: three octaves of smooth colour and some noise."""
    rng = np.random.default_rng(seed)
    picture = np.full((height, width, 3), 128.0, np.float32)
    for cells, amplitude in ((4, 90), (16, 40), (64, 18)):
        coarse = PILImage.fromarray(rng.integers(0, 256, (cells, cells, 3), dtype=np.uint8))
        smooth = coarse.resize((width, height), PILImage.Resampling.BICUBIC)
        picture += (np.asarray(smooth, np.float32) - 128) * amplitude / 128
    picture += rng.normal(0, 4, picture.shape)
    return np.clip(picture, 0, 255).astype(np.uint8)


def pictures_for(width: int, height: int) -> np.ndarray:
    with _lock:
        if (width, height) not in _pictures:
            _pictures[(width, height)] = np.stack(
                [photo_like(seed, width, height) for seed in range(DISTINCT_PICTURES)]
            )
        return _pictures[(width, height)]


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
    """Sleeps the batch's GPU time, then returns its pictures (no previews: the benchmark's
    jobs ask for none)."""
    global busy_seconds
    pool = pictures_for(spec.width, spec.height)
    started = time.perf_counter()
    for step in range(1, spec.steps + 1):
        time.sleep(SECONDS_PER_IMAGE * len(items) / spec.steps)
        if on_step is not None and not on_step(step):
            raise Interrupted()
    busy_seconds += time.perf_counter() - started
    # The batch's one copy from the device: a fresh host array, as .cpu() makes.
    host = pool[[item.seed % DISTINCT_PICTURES for item in items]]
    return [PILImage.fromarray(picture) for picture in host]


def warm_up(model: str | None = None) -> None:
    pictures_for(512, 512)
