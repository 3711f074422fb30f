"""What streamed partial images add to a render: the previews' share of its time.

Run with `.venv/bin/python bench/preview_cost.py` (no database: the pipeline alone). It
renders the demo model's images at SIZES with STEPS steps and 3 previews (as the worker
makes them for `partial_images=3`, with generation.pipeline.preview_decode), ROUNDS times,
and reports the median render and the median time spent making the previews within it
(timed inside the same runs, so that other load on the machine does not skew the share).
On a machine with a CUDA GPU it does the same with Stable Diffusion's architecture
(bench/worker_throughput.py's, random weights) at 512x512, 20 steps.

Goal: the previews cost under 10% of the render.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django

django.setup()

from django.conf import settings  # noqa: E402

SIZES = (64, 256)
STEPS = 20
PREVIEWS = 3
ROUNDS = int(os.environ.get("ROUNDS", "5"))


def demo(size: int) -> tuple[float, float]:
    """Median seconds of one image with PREVIEWS previews, and of the previews'
    share of it (timed inside the same runs, so that other load on the machine cancels)."""
    from generation import pipeline

    model = str(Path(settings.BASE_DIR) / "models" / "atelier-demo")
    spec = pipeline.BatchSpec(size, size, STEPS, 4.0)
    items = [pipeline.BatchItem("a red circle on a gray background", "", 1)]
    previews = {step: [0] for step in pipeline.preview_steps(STEPS, PREVIEWS)}
    decode = pipeline.preview_decode
    spent: list[float] = []

    def timed_decode(*args: object) -> object:
        start = time.perf_counter()
        try:
            return decode(*args)  # type: ignore[arg-type]
        finally:
            spent.append(time.perf_counter() - start)

    pipeline.preview_decode = timed_decode  # type: ignore[assignment]
    pipeline.run_batch(spec, items, model=model, previews=previews, on_preview=noop)  # warm up
    renders, shares = [], []
    for _ in range(ROUNDS):
        spent.clear()
        start = time.perf_counter()
        pipeline.run_batch(spec, items, model=model, previews=previews, on_preview=noop)
        renders.append(time.perf_counter() - start)
        assert len(spent) == PREVIEWS
        shares.append(sum(spent))
    pipeline.preview_decode = decode  # type: ignore[assignment]
    return median(renders), median(shares)


def noop(*args: object) -> None:
    return None


def gpu_sd() -> tuple[float, float]:
    """The same at 512x512 with Stable Diffusion's architecture on a CUDA GPU."""
    import torch

    from bench.worker_throughput import turbo_pipeline
    from generation import pipeline

    model = Path(settings.BASE_DIR) / "models" / "atelier-demo"
    pipe = turbo_pipeline(str(model)).to("cuda", torch.bfloat16)  # type: ignore[attr-defined]
    pipe.set_progress_bar_config(disable=True)
    steps = set(pipeline.preview_steps(STEPS, PREVIEWS))
    spent: list[float] = []

    def callback(pipe_: object, step: int, timestep: object, tensors: dict) -> dict:
        if step + 1 in steps:
            torch.cuda.synchronize()
            start = time.perf_counter()
            pipeline.preview_decode(pipe, tensors["latents"], (512, 512))
            spent.append(time.perf_counter() - start)
        return tensors

    def render() -> float:
        spent.clear()
        torch.cuda.synchronize()
        start = time.perf_counter()
        pipe(
            ["a red circle on a gray background"],
            num_inference_steps=STEPS,
            guidance_scale=4.0,
            callback_on_step_end=callback,
        )
        torch.cuda.synchronize()
        return time.perf_counter() - start

    render()  # warm up (and fit the projection)
    renders, shares = [], []
    for _ in range(ROUNDS):
        renders.append(render())
        shares.append(sum(spent))
    return median(renders), median(shares)


def report(name: str, render: float, previews: float) -> None:
    print(
        f"{name}: {STEPS} steps with {PREVIEWS} previews {render * 1000:8.1f} ms, of which "
        f"previews {previews * 1000:6.1f} ms ({previews / render:.1%})"
    )


def main() -> None:
    for size in SIZES:
        report(f"demo model {size}x{size} (cpu)", *demo(size))
    import torch

    if torch.cuda.is_available():
        report("GPU SD architecture 512x512", *gpu_sd())
    else:
        print("no CUDA GPU here: the 512x512 GPU figure needs the device machine")


if __name__ == "__main__":
    main()
