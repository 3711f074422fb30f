"""Worker throughput: one job at a time against micro-batches, through the real queue.

Run with `make bench-worker` (embedded PostgreSQL and Redis under var/bench). In one run:

1. JOBS queued jobs of 64x64 drained through Celery by a real worker process (which warms
   up first) with GENERATION_BATCH_SIZE=8, timed from the first job's start to the last
   one's finish; submission is the admission benchmark's subject, not this one's;
2. the raw pipeline called directly at batch 8 (no queue, no database), as the ceiling,
   and at batch 1: its own batch scaling bounds what micro-batching can give;
3. the same as 1. with GENERATION_BATCH_SIZE=1;

ROUNDS times, and reports medians.

Goals: batched / single >= 3, platform (batched) / raw >= 0.8. On a machine with a CUDA
GPU it also builds a pipeline with Stable Diffusion Turbo's architecture (random weights)
and reports 512x512 one-step images per second at batch 1, 4, 16 and 32, and the share of
the GPU's peak bf16 FLOP/s that represents (about 3.4 TFLOP per image).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db.models import Count, Max, Min  # noqa: E402

from accounts.selectors import workspaces_for  # noqa: E402
from accounts.services import user_signup  # noqa: E402
from bench.common import PRODUCTION  # noqa: E402
from billing.models import Plan, Subscription  # noqa: E402
from generation.models import Job  # noqa: E402
from generation.services import job_submit  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
JOBS = 64
SIZE = 64
STEPS = 4
GUIDANCE = 3.0
BATCH = 8
ROUNDS = 3
FLOP_PER_TURBO_IMAGE = 3.4e12


def workspace() -> tuple[object, Plan]:
    plan, _ = Plan.objects.update_or_create(
        slug="bench-worker",
        defaults={
            "name": "Bench", "daily_images": 10**9, "requests_per_minute": 10**6,
            "lane": "standard", "max_jobs_in_flight": 10**4, "max_width": 1024,
            "max_height": 1024,
        },
    )  # fmt: skip
    user = user_signup(email=f"{uuid.uuid4().hex[:8]}@bench.example", password="bench pass 1234")
    space = workspaces_for(user).get()
    Subscription.objects.create(workspace=space, plan=plan)
    return space, plan


def through_the_platform(batch_size: int, model: str) -> float:
    """Images per second of a real worker process draining JOBS queued jobs, from the
    first job's start to the last one's finish (database timestamps)."""
    space, plan = workspace()
    ids = []
    for n in range(JOBS):
        job = job_submit(
            workspace=space, user=None, api_key=None, plan=plan, model=model,
            params=dict(prompt=f"a red circle {n}", width=SIZE, height=SIZE, steps=STEPS,
                        guidance=GUIDANCE, num_images=1, seed=n),
        ).job  # fmt: skip
        ids.append(job.pk)
    log = open(Path(tempfile.gettempdir()) / f"bench-worker-{batch_size}.log", "wb")  # noqa: SIM115
    hostname = f"bench-{uuid.uuid4().hex[:6]}@localhost"
    worker = subprocess.Popen(
        [
            sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo",
            "--queues", "gpu.standard", "--hostname", hostname, "--loglevel", "WARNING",
            "--without-mingle", "--without-gossip",
        ],
        cwd=ROOT,
        env={
            **os.environ, **PRODUCTION, "GENERATION_BATCH_SIZE": str(batch_size),
            "GENERATION_MODEL": model, "WORKER_LANES": "standard",
        },
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_for(ids, timeout=900)
    finally:
        worker.terminate()
        worker.wait(60)
    span = Job.objects.filter(pk__in=ids).aggregate(start=Min("started_at"), end=Max("finished_at"))
    return JOBS / (span["end"] - span["start"]).total_seconds()


def wait_for(ids: list[object], timeout: float) -> None:
    """Poll gently (the timing comes from the jobs' own timestamps, and a busy poller would
    take CPU from the worker it measures)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = dict(
            Job.objects.filter(pk__in=ids)
            .values("status")
            .annotate(n=Count("id"))
            .values_list("status", "n")
        )
        if counts.get(Job.Status.FAILED):
            failed = Job.objects.filter(pk__in=ids, status=Job.Status.FAILED).first()
            raise RuntimeError(f"job failed: {failed.error_message}")
        if counts.get(Job.Status.SUCCEEDED) == len(ids):
            return
        time.sleep(0.25)
    raise RuntimeError("jobs did not finish in time")


def raw_pipeline(model: str, batch: int) -> float:
    """Images per second of the pipeline called directly (no queue, no database)."""
    from generation import pipeline

    spec = pipeline.BatchSpec(SIZE, SIZE, STEPS, GUIDANCE)
    items = [pipeline.BatchItem(f"a red circle {n}", "", n) for n in range(batch)]
    pipeline.run_batch(spec, items, model=model)  # warm up
    start = time.perf_counter()
    for _ in range(JOBS // batch):
        pipeline.run_batch(spec, items, model=model)
    return JOBS / (time.perf_counter() - start)


def turbo_pipeline(model: str) -> object:
    """SD-Turbo's architecture with random weights, on the CPU in float32. The tokenizer is
    the demo model's (offline), padded to CLIP's 77 tokens as SD-Turbo's is."""
    from diffusers import (
        AutoencoderKL,
        EulerAncestralDiscreteScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    unet = UNet2DConditionModel(
        sample_size=64, cross_attention_dim=1024, attention_head_dim=(5, 10, 20, 20),
        use_linear_projection=True, block_out_channels=(320, 640, 1280, 1280),
    )  # fmt: skip
    vae = AutoencoderKL(
        block_out_channels=(128, 256, 512, 512), latent_channels=4, sample_size=512,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=2,
    )  # fmt: skip
    tokenizer = CLIPTokenizer.from_pretrained(Path(model) / "tokenizer", model_max_length=77)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer), hidden_size=1024, intermediate_size=4096,
            num_hidden_layers=23, num_attention_heads=16, hidden_act="gelu",
        )
    )  # fmt: skip
    return StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
        scheduler=EulerAncestralDiscreteScheduler(timestep_spacing="trailing"),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )  # fmt: skip


def gpu_turbo(model: str) -> None:
    """SD-Turbo's architecture with random weights: 512x512, one step, on a CUDA GPU."""
    import torch

    pipe = turbo_pipeline(model).to("cuda", torch.bfloat16)
    pipe.set_progress_bar_config(disable=True)
    peak = float(os.environ.get("GPU_PEAK_BF16_TFLOPS", "989")) * 1e12  # H100 SXM dense
    for batch in (1, 4, 16, 32):
        prompts = ["a red circle on a gray background"] * batch
        pipe(prompts, num_inference_steps=1, guidance_scale=0.0)  # warm up
        torch.cuda.synchronize()
        start = time.perf_counter()
        rounds = max(64 // batch, 2)
        for _ in range(rounds):
            pipe(prompts, num_inference_steps=1, guidance_scale=0.0)
        torch.cuda.synchronize()
        ips = batch * rounds / (time.perf_counter() - start)
        mfu = ips * FLOP_PER_TURBO_IMAGE / peak
        print(f"GPU sd-turbo 512x512 1 step batch {batch:2d}: {ips:7.1f} images/s  MFU {mfu:.1%}")


def main() -> None:
    call_command("migrate", verbosity=0)
    model = settings.GENERATION_MODEL
    print(f"{JOBS} jobs of {SIZE}x{SIZE}, {STEPS} steps, on {model}, {ROUNDS} rounds", flush=True)
    rows = []
    for n in range(ROUNDS):
        # Each ratio pairs measurements taken next to each other: this machine's speed
        # drifts by a third from one minute to the next.
        batched = through_the_platform(BATCH, model)
        raw = raw_pipeline(model, BATCH)
        raw_single = raw_pipeline(model, 1)
        single = through_the_platform(1, model)
        rows.append((single, batched, raw, raw_single))
        print(
            f"round {n + 1}: platform one job at a time {single:.2f} images/s, micro-batches "
            f"of {BATCH} {batched:.2f}; raw pipeline batch {BATCH} {raw:.2f}, batch 1 "
            f"{raw_single:.2f}",
            flush=True,
        )
    single, batched, raw, raw_single = (median(column) for column in zip(*rows, strict=True))
    batch_ratio = median(b / s for s, b, _, _ in rows)
    platform_vs_raw = median(b / r for _, b, r, _ in rows)
    raw_scaling = median(r / r1 for _, _, r, r1 in rows)
    print(f"medians: batch ratio {batch_ratio:.2f} (goal >= 3), platform/raw {platform_vs_raw:.2f}")
    print(
        f"raw pipeline batch {BATCH} / batch 1: {raw_scaling:.2f}. This bounds the platform's "
        "batch ratio, unless running one job at a time carries heavy overhead."
    )
    import torch

    if torch.cuda.is_available():
        gpu_turbo(model)
    else:
        print("no CUDA GPU here: the SD-Turbo GPU figures need the device machine")
    print(
        f"RESULT single_ips={single:.2f} batched_ips={batched:.2f} "
        f"batch_ratio={batch_ratio:.2f} raw_ips={raw:.2f} platform_vs_raw={platform_vs_raw:.2f}"
    )


if __name__ == "__main__":
    main()
