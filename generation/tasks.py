"""Celery tasks. Each takes ids, loads rows, and is a no-op when the work is done."""

from __future__ import annotations

import logging
import os
import socket

from celery import shared_task

from generation.images import encode_png
from generation.models import Job
from generation.services import GeneratedImage, job_claim, job_complete, job_fail

logger = logging.getLogger(__name__)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@shared_task(name="generation.run_job", acks_late=True, ignore_result=True)
def run_job(job_id: str) -> None:
    """Run one queued job. A duplicate message finds it no longer queued and does nothing."""
    worker = worker_id()
    job = job_claim(job_id=job_id, worker=worker)
    if job is None:
        return
    try:
        images = _render(job)
    except Exception as exc:
        logger.exception("Job %s failed", job.id)
        job_fail(job=job, worker=worker, code="generation_failed", message=str(exc))
        return
    job_complete(job=job, worker=worker, images=images)


def _render(job: Job) -> list[GeneratedImage]:
    from generation import pipeline  # torch is imported by workers only

    seeds = [job.seed + index for index in range(job.num_images)]
    pictures = pipeline.generate(
        pipeline.Request(
            prompt=job.prompt,
            negative_prompt=job.negative_prompt,
            width=job.width,
            height=job.height,
            steps=job.steps,
            guidance=job.guidance,
            seeds=seeds,
        ),
        model=job.model,
    )
    results = []
    for seed, picture in zip(seeds, pictures, strict=True):
        provenance = {
            "model": job.model,
            "prompt": job.prompt,
            "negative_prompt": job.negative_prompt,
            "seed": str(seed),
            "parameters": {
                "width": job.width,
                "height": job.height,
                "steps": job.steps,
                "guidance": job.guidance,
            },
            "job": str(job.id),
        }
        results.append(
            GeneratedImage(
                png=encode_png(picture, provenance=provenance),
                width=picture.width,
                height=picture.height,
                seed=seed,
            )
        )
    return results
