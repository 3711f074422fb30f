"""The GPU worker's loop: claim -> render -> settle, with the heartbeat and the step watcher.

A ticket (generation.tasks.run_job) wakes a worker; the database decides what runs. Each
round claims a batch of compatible jobs in fair order (SKIP LOCKED), renders them in one
pipeline call while a thread heartbeats for them, then settles each job in one transaction:
succeeded and charged, or failed and refunded (generation.settling). Pipelined (the
default), the three overlap: while the GPU renders batch N, batch N+1 is claimed and batch
N-1 encoded, stored and settled on other threads. Job state changes themselves live in
generation.services; this module only sequences them around the GPU work.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from types import ModuleType
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection
from PIL import Image as PILImage

from config.logs import job_context
from config.metrics import (
    BATCH_IMAGES,
    GPU_MEMORY,
    GPU_UTILISATION,
    OOM_BACKOFFS,
    RENDER_SECONDS_PER_IMAGE,
)
from generation.models import Job
from generation.notify import job_event, job_events_on_commit
from generation.partials import denoising_steps, partials_plan
from generation.queue import batch_image_limit, job_claim_batch, lane_with_work
from generation.safety import (
    OutputFlagged,
    job_refuse_output,
    outputs_flagged,
    previews_checked,
)
from generation.services import (
    job_fail,
    job_heartbeat,
    job_progress,
    jobs_of_suspended_cancel,
    jobs_wake_waiting,
)
from generation.settling import (
    OUTPUT_FAILED,
    OUTPUT_FAILED_MESSAGE,
    Picture,
    RenderedBatch,
    SettleStage,
    batch_settle,
)
from generation.tickets import ticket_ring

logger = logging.getLogger(__name__)

# While settling threads run Python, the rendering thread waits up to the interpreter's
# switch interval (5 ms by default) for the GIL after each wait of its own (a GPU call, a
# database round trip): the GPU's time. Pipelined workers switch ten times as often.
GIL_SWITCH_INTERVAL = 0.0005
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

    A ticket is a doorbell (generation/tickets.py): whichever job it names, the worker claims
    what runs next in its lanes, batch after batch for up to DRAIN_SECONDS, so the GPU does
    not wait for a message between batches. One that stops at that deadline with work left
    rings again; one that finds nothing it may take returns at once.

    With WORKER_PIPELINE (the default) the GPU does not wait for the host either: while it
    renders a batch, the next one is claimed on a thread and the last one is encoded, stored
    and settled by a SettleStage. The ticket returns once every batch it rendered is settled.
    """
    if lane_with_work(settings.WORKER_LANES) is None:
        return  # what the ticket rang for already ran (or was cancelled, or waits at a cap)
    worker = worker_id()
    deadline = time.monotonic() + DRAIN_SECONDS
    stopped = False  # by the deadline, with a batch claimed

    with Heartbeat(worker) as beats, contextlib.ExitStack() as stack:

        def claim() -> tuple[list[Job], list[Job]]:
            """The next batch, and those of its jobs to run: its start events sent and the jobs
            of suspended workspaces cancelled (on the claiming thread: off the GPU's path when
            pipelined)."""
            claimed = job_claim_batch(
                worker=worker,
                lanes=settings.WORKER_LANES,
                max_images=batch_image_limit(
                    settings.GENERATION_BATCH_SIZE, settings.GENERATION_BATCH_SECONDS
                ),
            )
            job_events_on_commit(
                [job_event(job.pk, "start", Job.Status.RUNNING, 0.0) for job in claimed]
            )
            jobs = jobs_of_suspended_cancel(jobs=claimed) if claimed else []
            beats.add(jobs)  # held from their claim until they are settled (or end otherwise)
            return claimed, jobs

        if settings.WORKER_PIPELINE:
            sys.setswitchinterval(GIL_SWITCH_INTERVAL)
            stage = stack.enter_context(
                SettleStage(
                    worker=worker,
                    on_settled=beats.discard,
                    depth=settings.WORKER_SETTLE_DEPTH,
                    threads=settings.WORKER_ENCODE_THREADS,
                )
            )
            claimer = stack.enter_context(ClaimAhead(claim))
            settle: Callable[[RenderedBatch], None] = stage.put
        else:
            claimer = None
            settle = settle_here(worker, beats)

        claimed, jobs = claim()
        # Until nothing is left that it may take (held-back jobs are woken when others end).
        while claimed:
            more = time.monotonic() < deadline
            if claimer is not None and more:
                claimer.start()  # the next batch is claimed while the GPU renders this one
            if jobs:
                run_batch(jobs, worker=worker, settle=settle, beats=beats)
            if not more:
                stopped, claimed, jobs = True, [], []
            elif claimer is None:
                claimed, jobs = claim()
            elif not (claimed_jobs := claimer.result())[0]:
                # Nothing claimable while this batch was rendering; settling it may make
                # room (a workspace at its in-flight cap), so claim again once it is done.
                stage.drain()
                claimed, jobs = claim()
            else:
                claimed, jobs = claimed_jobs
    if stopped and (lane := lane_with_work(settings.WORKER_LANES)) is not None:
        # Stopped at the deadline with work left: ring for the next drain (this worker's or
        # another's) in a lane that has the work (a ticket in the lane it last ran could
        # wake a worker that serves only that one), which admission would not while the
        # lane's tickets were many.
        ticket_ring(job_id=job_id, lane=lane)


class ClaimAhead:
    """Claims the next batch on a thread of its own while the GPU renders this one.

    One claim at a time (start, then result), on one thread, which closes its database
    connection when the ticket ends. Jobs it claims are running from then on: the caller
    adds them to its heartbeat before anything else.
    """

    def __init__(self, claim: Callable[[], tuple[list[Job], list[Job]]]) -> None:
        self.claim = claim
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="claim")
        self.pending: Future[tuple[list[Job], list[Job]]] | None = None

    def start(self) -> None:
        self.pending = self.pool.submit(self.claim)

    def result(self) -> tuple[list[Job], list[Job]]:
        assert self.pending is not None
        pending, self.pending = self.pending, None
        return pending.result()

    def __enter__(self) -> ClaimAhead:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.pending is not None:  # left by an error: its jobs go back by the sweeper
            self.pending.result()
        # Looked up on the pool's one thread: that thread's own connection.
        self.pool.submit(lambda: connection.close()).result()
        self.pool.shutdown()


def time_limit(jobs: list[Job]) -> float:
    """Seconds a batch may run: a base plus a share per megapixel x step x image."""
    work = sum(job.width * job.height / 1e6 * job.steps * job.num_images for job in jobs)
    return settings.JOB_TIME_LIMIT_BASE + settings.JOB_TIME_LIMIT_PER_MEGAPIXEL_STEP * work


class Heartbeat:
    """Beats for every job the worker holds, from a thread, so that long steps, a slow load
    or a batch waiting to be settled are not taken for a dead worker. A job is held from
    its claim until it is settled; when its beats stop, the sweeper may requeue it."""

    def __init__(self, worker: str) -> None:
        self.worker = worker
        self.ids: set[Any] = set()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)

    def add(self, jobs: Iterable[Job]) -> None:
        with self.lock:
            self.ids.update(job.pk for job in jobs)

    def discard(self, jobs: Iterable[Job]) -> None:
        with self.lock:
            self.ids.difference_update(job.pk for job in jobs)

    def _beat(self) -> None:
        try:
            while not self.stop.wait(settings.JOB_HEARTBEAT_INTERVAL):
                with self.lock:
                    ids = list(self.ids)
                if ids:
                    job_heartbeat(job_ids=ids, worker=self.worker)
        finally:
            connection.close()

    def __enter__(self) -> Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        self.thread.join()


def settle_here(worker: str, beats: Heartbeat) -> Callable[[RenderedBatch], None]:
    """Settling on the rendering thread, before the next claim: the serial worker."""

    def settle(batch: RenderedBatch) -> None:
        try:
            batch_settle(batch, worker=worker)
        finally:
            beats.discard(batch.jobs)

    return settle


def run_batch(
    jobs: list[Job],
    *,
    worker: str,
    settle: Callable[[RenderedBatch], None] | None = None,
    beats: Heartbeat | None = None,
) -> None:
    """Render a claimed batch and hand it to `settle` (by default: settle it here, each job
    succeeded and charged, or failed and refunded); jobs that fail to render are failed
    and refunded, cancelled ones dropped, and a worker is woken for what their workspaces
    still have queued. `beats` holds the jobs from their claim until they are settled."""
    if beats is None:
        with Heartbeat(worker) as own:
            own.add(jobs)
            run_batch(jobs, worker=worker, settle=settle, beats=own)
        return
    try:
        with job_context(
            job_ids=[str(job.pk) for job in jobs], request_ids=[job.request_id for job in jobs]
        ):
            logger.info("Claimed %d jobs", len(jobs))
            _run_batch(
                jobs, worker=worker, settle=settle or settle_here(worker, beats), beats=beats
            )
    except BaseException:
        beats.discard(jobs)
        jobs_wake_waiting(workspace_ids=list({job.workspace_id for job in jobs}))
        raise


# What a job's owner reads when rendering fails: a stable code and message. The exception,
# which may name server paths, goes to the log for operators.
FAILURES = {
    "out_of_memory": "The GPU ran out of memory for this job; its images were given back. "
    "A smaller size or fewer images may fit.",
    "generation_failed": "The image could not be generated; its images were given back.",
    OUTPUT_FAILED: OUTPUT_FAILED_MESSAGE,
}


def failure_code(exc: BaseException, pipeline: ModuleType) -> str:
    return "out_of_memory" if pipeline.is_out_of_memory(exc) else "generation_failed"


def _run_batch(
    jobs: list[Job],
    *,
    worker: str,
    settle: Callable[[RenderedBatch], None],
    beats: Heartbeat,
) -> None:
    pipeline = pipeline_module()
    started = time.monotonic()
    isolate = False
    try:
        rendered = render_with_backoff(jobs, on_step=step_watcher(jobs, worker))
    except pipeline.Interrupted:
        # Every job of the batch was cancelled, and refunded when it was.
        unsettled(jobs, beats)
        return
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
                _run_batch([job], worker=worker, settle=settle, beats=beats)
            return
        for job in jobs:
            with job_context(job_ids=[str(job.pk)], request_ids=[job.request_id]):
                if job_fail(job=job, worker=worker, code=code, message=message):
                    logger.info("Job failed: %s", code, extra={"code": code})
        unsettled(jobs, beats)
        return
    rendered_at = time.monotonic()
    images = sum(r.rendered if isinstance(r, OutputFlagged) else len(r) for r in rendered)
    BATCH_IMAGES.observe(images)
    if images:
        RENDER_SECONDS_PER_IMAGE.observe((rendered_at - started) / images)
    gpu_gauges_set(pipeline)
    logger.info(
        "Rendered a batch of %d jobs, %d images in %.0f ms",
        len(jobs), images, (rendered_at - started) * 1000,
    )  # fmt: skip
    kept: list[tuple[Job, list[Picture]]] = []
    refused: list[Job] = []
    for job, outcome in zip(jobs, rendered, strict=True):
        if isinstance(outcome, OutputFlagged):  # never encoded, stored or shown
            with job_context(job_ids=[str(job.pk)], request_ids=[job.request_id]):
                job_refuse_output(job=job, worker=worker, flagged=outcome.flagged)
            refused.append(job)
        else:
            kept.append((job, outcome))
    if refused:
        unsettled(refused, beats)
    if kept:
        settle(
            RenderedBatch(
                jobs=[job for job, _ in kept],
                pictures=[pictures for _, pictures in kept],
                render_seconds=rendered_at - started,
            )
        )


def unsettled(jobs: list[Job], beats: Heartbeat) -> None:
    """Jobs that end without being settled (failed or cancelled): no more beats, and a
    worker is woken for what their workspaces still have queued."""
    beats.discard(jobs)
    jobs_wake_waiting(workspace_ids=list({job.workspace_id for job in jobs}))


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
    """A step callback: writes progress at most twice a second before the last step, and
    stops the run when every job of the batch was cancelled or the batch is past its time
    limit."""
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
        if step >= steps:
            # The last step's progress (1.0) is written as the batch is settled, off the
            # GPU's path; a job cancelled meanwhile is skipped there and its images dropped.
            return True
        if now - last_write < PROGRESS_WRITE_INTERVAL:
            return True
        last_write = now
        if job_progress(job_ids=ids, worker=worker, progress=min(step / steps, 1.0)):
            return True
        logger.info("Stopped at step %d of %d: every job of the batch was cancelled", step, steps)
        return False

    return on_step


# A job's outcome from rendering: its pictures, or the output safety check's refusal.
Rendered = list[Picture] | OutputFlagged


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


def render(jobs: list[Job], *, on_step: Callable[[int], bool]) -> list[Rendered]:
    """One pipeline call for all images of all jobs, then the output safety check on the
    batch, on the same device; returns each job's pictures, or its refusal."""
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
        mine = [Picture(next(remaining), job.seed + index) for index in range(job.num_images)]
        results.append(
            OutputFlagged(flagged=flagged[job.pk], rendered=len(mine))
            if job.pk in flagged
            else mine
        )
    return results


def load_source(job: Job) -> PILImage.Image:
    with job.source_image.open("rb") as handle:
        return PILImage.open(io.BytesIO(handle.read())).convert("RGB")


def load_mask(job: Job) -> PILImage.Image:
    """The edit's mask, white where the model repaints (generation.uploads.mask_decode)."""
    with job.mask_image.open("rb") as handle:
        return PILImage.open(io.BytesIO(handle.read())).convert("L")
