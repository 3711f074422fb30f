"""Celery tasks. Each takes ids, loads rows, and is a no-op when there is nothing to do."""

from __future__ import annotations

import importlib
import io
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType

from celery import shared_task
from celery.signals import worker_ready
from django.conf import settings
from django.db import close_old_connections, connection
from PIL import Image as PILImage

from generation.images import encode_png
from generation.models import Job
from generation.queue import batch_image_limit, job_claim_batch, throughput_record, worker_alive
from generation.services import (
    GeneratedImage,
    images_expire,
    job_fail,
    job_heartbeat,
    job_progress,
    job_ticket_again,
    jobs_complete,
    jobs_sweep,
    jobs_wake_waiting,
)

logger = logging.getLogger(__name__)

PROGRESS_WRITE_INTERVAL = 0.5  # seconds between progress writes for a batch
DRAIN_SECONDS = 30.0  # how long one ticket keeps its worker taking batch after batch


class BatchTimedOut(Exception):
    pass


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def pipeline_module() -> ModuleType:
    """generation.pipeline (torch and diffusers), imported by workers only."""
    return importlib.import_module(settings.GENERATION_PIPELINE_MODULE)


@worker_ready.connect
def _warm_up(**kwargs: object) -> None:
    """Report this worker alive for the wait estimates, and load the model before the first
    job. A model that fails to load fails its jobs readably instead of stopping the worker."""
    worker = worker_id()

    def report_alive() -> None:
        while True:
            try:
                worker_alive(worker)
            except Exception:
                logger.exception("Could not report the worker alive")
            time.sleep(settings.WORKER_ALIVE_INTERVAL)

    try:
        pipeline_module().warm_up()
    except Exception:
        logger.exception("Warm-up failed; jobs will report the error")
    # Counted by the wait estimates only once it can take a job.
    threading.Thread(target=report_alive, name="alive", daemon=True).start()


@shared_task(name="generation.run_job", acks_late=True, ignore_result=True)
def run_job(job_id: str) -> None:
    """A ticket to run queued jobs: the next batch, and more while there is work.

    Every admitted job sends one; it wakes a worker, and the database decides what runs
    (generation.queue.job_claim_batch, in fair order). The worker keeps claiming batches
    for up to DRAIN_SECONDS, so the GPU does not wait for a message between batches; the
    tickets of jobs that ran meanwhile do nothing, and one whose job was passed over is
    sent again.
    """
    if not Job.objects.filter(pk=job_id, status=Job.Status.QUEUED).exists():
        return  # its job already ran in an earlier batch (or was cancelled)
    worker = worker_id()
    ran: set[str] = set()
    deadline = time.monotonic() + DRAIN_SECONDS
    # Until nothing is left that it may take (held-back jobs are woken when others end).
    while jobs := job_claim_batch(
        worker=worker,
        lanes=settings.WORKER_LANES,
        max_images=batch_image_limit(
            settings.GENERATION_BATCH_SIZE, settings.GENERATION_BATCH_SECONDS
        ),
    ):
        run_batch(jobs, worker=worker)
        ran.update(str(job.pk) for job in jobs)
        if time.monotonic() >= deadline:
            break
    if ran and job_id not in ran:
        # Fair order ran other jobs first: this job still needs a ticket of its own.
        job_ticket_again(job_id=job_id)


@shared_task(name="generation.sweep_jobs", ignore_result=True)
def sweep_jobs() -> None:
    result = jobs_sweep()
    if result.requeued or result.failed:
        logger.warning("Sweep: %d requeued, %d failed", result.requeued, result.failed)


@shared_task(name="generation.expire_images", ignore_result=True)
def expire_images() -> None:
    deleted = images_expire()
    if deleted:
        logger.info("Deleted %d images past their plan's retention", deleted)


def time_limit(jobs: list[Job]) -> float:
    """Seconds a batch may run: a base plus a share per megapixel x step x image."""
    work = sum(job.width * job.height / 1e6 * job.steps * job.num_images for job in jobs)
    return settings.JOB_TIME_LIMIT_BASE + settings.JOB_TIME_LIMIT_PER_MEGAPIXEL_STEP * work


@contextmanager
def heartbeat(jobs: list[Job], worker: str) -> Iterator[None]:
    """Beat for the batch from a thread, so that long steps or a slow load are not taken
    for a dead worker."""
    stop = threading.Event()
    ids = [job.pk for job in jobs]

    def beat() -> None:
        try:
            while not stop.wait(settings.JOB_HEARTBEAT_INTERVAL):
                job_heartbeat(job_ids=ids, worker=worker)
        finally:
            connection.close()

    thread = threading.Thread(target=beat, name="heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def run_batch(jobs: list[Job], *, worker: str) -> None:
    """Render a claimed batch and settle each job: succeeded and charged, or failed and
    refunded (cancelled jobs are dropped); then wake a worker for what their workspaces
    still have queued."""
    try:
        _run_batch(jobs, worker=worker)
    finally:
        jobs_wake_waiting(workspace_ids=list({job.workspace_id for job in jobs}))


def _run_batch(jobs: list[Job], *, worker: str) -> None:
    pipeline = pipeline_module()
    started = time.monotonic()
    with heartbeat(jobs, worker):
        try:
            rendered = render_with_backoff(jobs, on_step=step_watcher(jobs, worker))
        except pipeline.Interrupted:
            return  # every job of the batch was cancelled, and refunded when it was
        except BatchTimedOut:
            rendered = None
            code = "time_limit_exceeded"
            message = "The job ran past its time limit; its images were given back."
        except Exception as exc:
            logger.exception("Batch of %d jobs failed", len(jobs))
            rendered = None
            code, message = "generation_failed", str(exc) or type(exc).__name__
    if not connection.in_atomic_block:
        close_old_connections()  # rendering may outlast the database connection
    if rendered is None:
        for job in jobs:
            job_fail(job=job, worker=worker, code=code, message=message)
        return
    rendered_at = time.monotonic()
    images = sum(len(images) for images in rendered)
    throughput_record(images=images, seconds=rendered_at - started)
    jobs_complete(worker=worker, results=list(zip(jobs, rendered, strict=True)))
    logger.info(
        "Batch of %d jobs, %d images: rendered in %.0f ms, stored in %.0f ms",
        len(jobs), images, (rendered_at - started) * 1000, (time.monotonic() - rendered_at) * 1000,
    )  # fmt: skip


def step_watcher(jobs: list[Job], worker: str) -> Callable[[int], bool]:
    """A step callback: writes progress at most twice a second, and stops the run when
    every job of the batch was cancelled or the batch is past its time limit."""
    ids = [job.pk for job in jobs]
    spec = jobs[0]
    steps = spec.steps if spec.strength is None else max(int(spec.steps * spec.strength), 1)
    started = time.monotonic()
    limit = time_limit(jobs)
    last_write = 0.0

    def on_step(step: int) -> bool:
        nonlocal last_write
        now = time.monotonic()
        if now - started > limit:
            raise BatchTimedOut()
        if now - last_write < PROGRESS_WRITE_INTERVAL and step < steps:
            return True
        last_write = now
        if job_progress(job_ids=ids, worker=worker, progress=min(step / steps, 1.0)):
            return True
        logger.info("Stopped at step %d of %d: every job of the batch was cancelled", step, steps)
        return False

    return on_step


def render_with_backoff(
    jobs: list[Job], *, on_step: Callable[[int], bool]
) -> list[list[GeneratedImage]]:
    """Render the batch; on a GPU out-of-memory error, halve it and try again."""
    pipeline = pipeline_module()
    try:
        return render(jobs, on_step=on_step)
    except Exception as exc:
        if not pipeline.is_out_of_memory(exc) or len(jobs) == 1:
            raise
        logger.warning("Out of memory with %d jobs; splitting the batch", len(jobs))
        half = len(jobs) // 2
        return render_with_backoff(jobs[:half], on_step=on_step) + render_with_backoff(
            jobs[half:], on_step=on_step
        )


def render(jobs: list[Job], *, on_step: Callable[[int], bool]) -> list[list[GeneratedImage]]:
    """One pipeline call for all images of all jobs; returns each job's images."""
    pipeline = pipeline_module()
    first = jobs[0]
    spec = pipeline.BatchSpec(
        width=first.width,
        height=first.height,
        steps=first.steps,
        guidance=first.guidance,
        strength=first.strength if first.kind == Job.Kind.EDIT else None,
    )
    items = []
    for job in jobs:
        source = load_source(job) if job.kind == Job.Kind.EDIT else None
        items += [
            pipeline.BatchItem(job.prompt, job.negative_prompt, job.seed + index, source)
            for index in range(job.num_images)
        ]
    pictures = iter(pipeline.run_batch(spec, items, model=first.model, on_step=on_step))
    results = []
    for job in jobs:
        images = []
        for index in range(job.num_images):
            picture = next(pictures)
            seed = job.seed + index
            images.append(
                GeneratedImage(
                    png=encode_png(picture, provenance=provenance(job, seed)),
                    width=picture.width,
                    height=picture.height,
                    seed=seed,
                )
            )
        results.append(images)
    return results


def load_source(job: Job) -> PILImage.Image:
    with job.source_image.open("rb") as handle:
        return PILImage.open(io.BytesIO(handle.read())).convert("RGB")


def provenance(job: Job, seed: int) -> dict[str, object]:
    parameters: dict[str, object] = {
        "width": job.width,
        "height": job.height,
        "steps": job.steps,
        "guidance": job.guidance,
    }
    if job.kind == Job.Kind.EDIT:
        parameters["strength"] = job.strength
    return {
        "model": job.model,
        "kind": job.kind,
        "prompt": job.prompt,
        "negative_prompt": job.negative_prompt,
        "seed": str(seed),
        "parameters": parameters,
        "job": str(job.id),
    }
