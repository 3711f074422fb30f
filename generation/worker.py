"""The GPU worker's loop: claim -> render -> settle, with the heartbeat and the step watcher.

A ticket (generation.tasks.run_job) wakes a worker; the database decides what runs. Each
round claims a batch of compatible jobs in fair order (SKIP LOCKED), renders them in one
pipeline call while a thread heartbeats for them, then settles each job in one transaction:
succeeded and charged, or failed and refunded. Job state changes themselves live in
generation.services; this module only sequences them around the GPU work.
"""

from __future__ import annotations

import importlib
import io
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType

from django.conf import settings
from django.db import close_old_connections, connection
from PIL import Image as PILImage
from redis import RedisError

from config.logs import job_context
from config.metrics import (
    BATCH_IMAGES,
    GPU_MEMORY,
    GPU_UTILISATION,
    OOM_BACKOFFS,
    RENDER_SECONDS_PER_IMAGE,
)
from generation.images import encode_image
from generation.images import mime_type as output_mime_type
from generation.models import Job
from generation.notify import job_event, job_events_on_commit
from generation.partials import denoising_steps, partials_plan
from generation.provenance import (
    ImageClaims,
    SourceImage,
    content_credentials_sign,
    mime_type,
    model_public_name,
    watermark_embed,
    watermark_ref,
)
from generation.queue import batch_image_limit, job_claim_batch, throughput_record
from generation.safety import (
    OutputFlagged,
    job_refuse_output,
    outputs_flagged,
    previews_checked,
)
from generation.services import (
    GeneratedImage,
    job_fail,
    job_heartbeat,
    job_progress,
    job_ticket_again,
    jobs_complete,
    jobs_of_suspended_cancel,
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


def ticket_run(job_id: str) -> None:
    """Run queued jobs for one ticket: the next batch, and more while there is work.

    The worker keeps claiming batches for up to DRAIN_SECONDS, so the GPU does not wait for
    a message between batches; the tickets of jobs that ran meanwhile do nothing, and one
    whose job was passed over by fair order is sent again.
    """
    if not Job.objects.filter(pk=job_id, status=Job.Status.QUEUED).exists():
        return  # its job already ran in an earlier batch (or was cancelled)
    worker = worker_id()
    ran: set[str] = set()
    deadline = time.monotonic() + DRAIN_SECONDS
    # Until nothing is left that it may take (held-back jobs are woken when others end).
    while claimed := job_claim_batch(
        worker=worker,
        lanes=settings.WORKER_LANES,
        max_images=batch_image_limit(
            settings.GENERATION_BATCH_SIZE, settings.GENERATION_BATCH_SECONDS
        ),
    ):
        ran.update(str(job.pk) for job in claimed)
        job_events_on_commit(
            [job_event(job.pk, "start", Job.Status.RUNNING, 0.0) for job in claimed]
        )
        if jobs := jobs_of_suspended_cancel(jobs=claimed):
            run_batch(jobs, worker=worker)
        if time.monotonic() >= deadline:
            break
    if ran and job_id not in ran:
        # Fair order ran other jobs first: this job still needs a ticket of its own.
        job_ticket_again(job_id=job_id)


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
        with job_context(
            job_ids=[str(job.pk) for job in jobs], request_ids=[job.request_id for job in jobs]
        ):
            logger.info("Claimed %d jobs", len(jobs))
            _run_batch(jobs, worker=worker)
    finally:
        jobs_wake_waiting(workspace_ids=list({job.workspace_id for job in jobs}))


# What a job's owner reads when rendering fails: a stable code and message. The exception,
# which may name server paths, goes to the log for operators.
FAILURES = {
    "out_of_memory": "The GPU ran out of memory for this job; its images were given back. "
    "A smaller size or fewer images may fit.",
    "generation_failed": "The image could not be generated; its images were given back.",
}


def failure_code(exc: BaseException, pipeline: ModuleType) -> str:
    return "out_of_memory" if pipeline.is_out_of_memory(exc) else "generation_failed"


def _run_batch(jobs: list[Job], *, worker: str) -> None:
    pipeline = pipeline_module()
    started = time.monotonic()
    isolate = False
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
            code = failure_code(exc, pipeline)
            message = FAILURES[code]
            # One job (a prompt, a photo) may be what fails: the others, other workspaces'
            # included, should not fail with it. A model that cannot load fails them all.
            model_error = getattr(pipeline, "ModelLoadError", ())
            isolate = len(jobs) > 1 and not isinstance(exc, model_error)
    if not connection.in_atomic_block:
        close_old_connections()  # rendering may outlast the database connection
    if rendered is None:
        if isolate:
            logger.warning("Rendering the %d jobs of the failed batch one by one", len(jobs))
            for job in jobs:
                _run_batch([job], worker=worker)
            return
        for job in jobs:
            with job_context(job_ids=[str(job.pk)], request_ids=[job.request_id]):
                if job_fail(job=job, worker=worker, code=code, message=message):
                    logger.info("Job failed: %s", code, extra={"code": code})
        return
    rendered_at = time.monotonic()
    images = sum(r.rendered if isinstance(r, OutputFlagged) else len(r) for r in rendered)
    BATCH_IMAGES.observe(images)
    if images:
        RENDER_SECONDS_PER_IMAGE.observe((rendered_at - started) / images)
    try:
        throughput_record(images=images, seconds=rendered_at - started)
    except RedisError:  # the estimate misses one sample; the images must still be settled
        logger.warning("Throughput not recorded: Redis unreachable")
    gpu_gauges_set(pipeline)
    made: list[tuple[Job, list[GeneratedImage]]] = []
    for job, outcome in zip(jobs, rendered, strict=True):
        if isinstance(outcome, OutputFlagged):
            with job_context(job_ids=[str(job.pk)], request_ids=[job.request_id]):
                job_refuse_output(job=job, worker=worker, flagged=outcome.flagged)
        else:
            made.append((job, outcome))
    jobs_complete(worker=worker, results=made)
    logger.info(
        "Batch of %d jobs, %d images: rendered in %.0f ms, stored in %.0f ms",
        len(jobs), images, (rendered_at - started) * 1000, (time.monotonic() - rendered_at) * 1000,
    )  # fmt: skip


def gpu_gauges_set(pipeline: ModuleType) -> None:
    """The worker's GPU memory and utilisation gauges (CUDA only; nothing elsewhere)."""
    usage = getattr(pipeline, "gpu_usage", lambda: None)()
    if usage is None:
        return
    memory, utilisation = usage
    GPU_MEMORY.set(memory)
    if utilisation is not None:
        GPU_UTILISATION.set(utilisation)


def step_watcher(jobs: list[Job], worker: str) -> Callable[[int], bool]:
    """A step callback: writes progress at most twice a second, and stops the run when
    every job of the batch was cancelled or the batch is past its time limit."""
    ids = [job.pk for job in jobs]
    steps = denoising_steps(jobs[0])
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


def render_with_backoff(jobs: list[Job], *, on_step: Callable[[int], bool]) -> list[Rendered]:
    """Render the batch; on a GPU out-of-memory error, halve it and try again."""
    pipeline = pipeline_module()
    try:
        return render(jobs, on_step=on_step)
    except Exception as exc:
        if not pipeline.is_out_of_memory(exc) or len(jobs) == 1:
            raise
        logger.warning("Out of memory with %d jobs; splitting the batch", len(jobs))
        OOM_BACKOFFS.inc()
        half = len(jobs) // 2
        return render_with_backoff(jobs[:half], on_step=on_step) + render_with_backoff(
            jobs[half:], on_step=on_step
        )


# A job's outcome from rendering: its finished images, or the safety check's refusal.
Rendered = list[GeneratedImage] | OutputFlagged


def render(jobs: list[Job], *, on_step: Callable[[int], bool]) -> list[Rendered]:
    """One pipeline call for all images of all jobs, then the safety check on the batch;
    returns each job's images (watermarked, encoded, signed) or its refusal."""
    pipeline = pipeline_module()
    first = jobs[0]
    spec = pipeline.BatchSpec(
        width=first.width,
        height=first.height,
        steps=first.steps,
        guidance=first.guidance,
        strength=first.strength if first.kind == Job.Kind.EDIT else None,
        masked=bool(first.mask_image),  # the batch key keeps masked and unmasked edits apart
    )
    items = []
    for job in jobs:
        source = load_source(job) if job.kind == Job.Kind.EDIT else None
        mask = load_mask(job) if job.mask_image else None
        items += [
            pipeline.BatchItem(job.prompt, job.negative_prompt, job.seed + index, source, mask)
            for index in range(job.num_images)
        ]
    previews, on_preview = partials_plan(jobs, preview_steps=pipeline.preview_steps)
    pictures = list(
        pipeline.run_batch(
            spec,
            items,
            model=first.model,
            on_step=on_step,
            previews=previews,
            on_preview=previews_checked(pipeline, jobs, on_preview),
        )
    )
    flagged = outputs_flagged(pipeline, jobs, pictures)
    remaining = iter(pictures)
    results: list[Rendered] = []
    for job in jobs:
        mine = [next(remaining) for _ in range(job.num_images)]
        if job.pk in flagged:  # never encoded, stored or shown
            results.append(OutputFlagged(flagged=flagged[job.pk], rendered=len(mine)))
            continue
        ingredient = source_credentials(job) if job.kind == Job.Kind.EDIT else None
        results.append(
            [
                finish_image(job, picture, job.seed + index, ingredient)
                for index, picture in enumerate(mine)
            ]
        )
    return results


def finish_image(
    job: Job, picture: PILImage.Image, seed: int, source: SourceImage | None
) -> GeneratedImage:
    """The picture as stored: watermarked, encoded, with its signed C2PA manifest."""
    image_id = uuid.uuid4()
    picture = watermark_embed(picture, ref=watermark_ref(image_id))
    encoded = encode_image(
        picture,
        output_format=job.output_format,
        quality=job.output_compression,
        provenance=provenance(job, seed),
    )
    claims = ImageClaims(image_id, model_public_name(job.model), edited=source is not None)
    signed = content_credentials_sign(
        encoded, output_mime_type(job.output_format), claims=claims, source=source
    )
    return GeneratedImage(
        png=signed, width=picture.width, height=picture.height, seed=seed, id=image_id
    )


def source_credentials(job: Job) -> SourceImage:
    """An edit's source photo, as its images' manifests record it (their parent ingredient)."""
    with job.source_image.open("rb") as handle:
        data = handle.read()
    return SourceImage(data, mime_type(data))


def load_source(job: Job) -> PILImage.Image:
    with job.source_image.open("rb") as handle:
        return PILImage.open(io.BytesIO(handle.read())).convert("RGB")


def load_mask(job: Job) -> PILImage.Image:
    """The edit's mask, white where the model repaints (generation.uploads.mask_decode)."""
    with job.mask_image.open("rb") as handle:
        return PILImage.open(io.BytesIO(handle.read())).convert("L")


def provenance(job: Job, seed: int) -> dict[str, object]:
    parameters: dict[str, object] = {
        "width": job.width,
        "height": job.height,
        "steps": job.steps,
        "guidance": job.guidance,
    }
    if job.kind == Job.Kind.EDIT:
        parameters["strength"] = job.strength
        parameters["masked"] = bool(job.mask_image)
    return {
        "model": job.model,
        "kind": job.kind,
        "prompt": job.prompt,
        "negative_prompt": job.negative_prompt,
        "seed": str(seed),
        "parameters": parameters,
        "job": str(job.id),
    }
