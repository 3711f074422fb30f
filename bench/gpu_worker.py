"""The worker on a CUDA GPU with SD-Turbo's architecture: through the platform against raw.

Run with `make bench-gpu-worker` on a machine with a CUDA GPU (embedded PostgreSQL and Redis
under var/bench; about five minutes, well under ten). NOT YET RUN ON A GPU: no GPU was lent
when it was written.

The pipeline is bench/worker_throughput.py's SD-Turbo architecture with random weights
(no download), in bf16, set up as generation.pipeline.load sets up a model (fused
attention, channels-last UNet) and put in its cache, so that the real generation.pipeline
renders: 512x512, one step, no guidance. For each batch size of BATCHES:

- raw: generation.pipeline.run_batch called directly (pictures on the host, uint8, one copy
  per batch), no queue, no database, no encoding;
- platform: the real worker (generation.worker.ticket_run, pipelined, in this process)
  draining JOBS queued one-image jobs with GENERATION_BATCH_SIZE at that size: claims,
  rendering, PNG encoding, storage, settling and charging;

in images per second, with MFU (FLOP_PER_TURBO_IMAGE over GPU_PEAK_BF16_TFLOPS, default 989,
an H100/H200's dense bf16 peak) and the platform's share of raw. Goal: share >= 0.8 at the
batch size that serves best.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# This process is the worker: it runs as production runs it (DEBUG off, no query log).
from bench.common import PRODUCTION

os.environ.update(PRODUCTION)
os.environ["WORKER_LANES"] = "standard"
os.environ["GENERATION_BATCH_SECONDS"] = "0"
os.environ["LOG_LEVEL"] = "WARNING"

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import override_settings  # noqa: E402

from bench.worker_throughput import FLOP_PER_TURBO_IMAGE, turbo_pipeline, workspace  # noqa: E402
from generation import pipeline, worker  # noqa: E402
from generation.models import Job  # noqa: E402
from generation.services import job_submit  # noqa: E402

BATCHES = (1, 4, 8, 16, 32)
JOBS = 256
SIZE = 512
PROMPT = "a red circle on a gray background"


def install_turbo(model: str) -> None:
    import torch
    from diffusers.models.attention_processor import AttnProcessor2_0

    pipe = turbo_pipeline(model).to("cuda", torch.bfloat16)
    pipe.set_progress_bar_config(disable=True)
    pipe.unet.set_attn_processor(AttnProcessor2_0())
    pipe.unet.to(memory_format=torch.channels_last)
    pipeline._loaded[model] = pipe  # generation.pipeline.load returns it from now on


def raw(batch: int) -> float:
    import torch

    spec = pipeline.BatchSpec(SIZE, SIZE, 1, 0.0)
    items = [pipeline.BatchItem(PROMPT, "", n) for n in range(batch)]
    pipeline.run_batch(spec, items)  # warm up this shape
    torch.cuda.synchronize()
    rounds = max(JOBS // batch, 4)
    start = time.perf_counter()
    for _ in range(rounds):
        pipeline.run_batch(spec, items)  # ends with the pictures on the host
    return batch * rounds / (time.perf_counter() - start)


def through_the_platform(batch: int, model: str) -> float:
    space, plan = workspace()
    ids = [
        str(
            job_submit(
                workspace=space, user=None, api_key=None, plan=plan, model=model,
                params=dict(prompt=PROMPT, width=SIZE, height=SIZE, steps=1, guidance=0.0,
                            num_images=1, seed=n),
            ).job.pk
        )
        for n in range(JOBS)
    ]  # fmt: skip
    with override_settings(GENERATION_BATCH_SIZE=batch, WORKER_PIPELINE=True):
        start = time.perf_counter()
        worker.ticket_run(ids[0])
        wall = time.perf_counter() - start
    done = Job.objects.filter(pk__in=ids, status=Job.Status.SUCCEEDED).count()
    if done != JOBS:
        raise RuntimeError(f"{JOBS - done} of {JOBS} jobs did not succeed")
    return JOBS / wall


def main() -> None:
    import torch

    if not torch.cuda.is_available():
        print("no CUDA GPU here: this benchmark needs one (make bench-worker-host simulates it)")
        return
    call_command("migrate", verbosity=0)
    model = settings.GENERATION_MODEL
    install_turbo(model)
    peak = float(os.environ.get("GPU_PEAK_BF16_TFLOPS", "989")) * 1e12
    print(f"{torch.cuda.get_device_name()}: SD-Turbo architecture, {SIZE}x{SIZE}, 1 step")
    best = (0.0, 0.0, 0)
    for batch in BATCHES:
        raw_ips = raw(batch)
        platform_ips = through_the_platform(batch, model)
        share = platform_ips / raw_ips
        raw_mfu = raw_ips * FLOP_PER_TURBO_IMAGE / peak
        platform_mfu = platform_ips * FLOP_PER_TURBO_IMAGE / peak
        print(
            f"batch {batch:2d}: raw {raw_ips:7.1f} images/s (MFU {raw_mfu:.1%}), "
            f"platform {platform_ips:7.1f} images/s (MFU {platform_mfu:.1%}), share {share:.2f}",
            flush=True,
        )
        if platform_ips > best[0]:
            best = (platform_ips, share, batch)
    platform_ips, share, batch = best
    print(
        f"RESULT best_batch={batch} platform_ips={platform_ips:.1f} "
        f"mfu={platform_ips * FLOP_PER_TURBO_IMAGE / peak:.3f} platform_vs_raw={share:.2f}"
    )


if __name__ == "__main__":
    main()
