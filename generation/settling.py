"""After the GPU: each rendered image is finished (encoded with its provenance) and stored,
then its batch is settled: succeeded and charged, or failed and refunded, job by job.

`image_finish` is the post-render stage of one image, where anything that must happen to
every picture before it is stored belongs (signing, an output safety check). `batch_settle`
runs the stage for a batch; `SettleStage` runs it on threads while the worker renders the
next batch (generation.worker.ticket_run).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import connection
from PIL import Image as PILImage
from redis import RedisError

from config.logs import job_context
from generation.images import encode_image
from generation.images import mime_type as output_mime_type
from generation.models import Job
from generation.provenance import (
    ImageClaims,
    SourceImage,
    content_credentials_sign,
    mime_type,
    model_public_name,
    watermark_embed,
    watermark_ref,
)
from generation.queue import throughput_record
from generation.services import (
    GeneratedImage,
    image_store,
    job_fail,
    job_progress,
    jobs_settle,
    jobs_wake_waiting,
)

logger = logging.getLogger(__name__)

# A job whose picture could not be encoded or stored: it alone fails, and is refunded.
OUTPUT_FAILED = "output_failed"
OUTPUT_FAILED_MESSAGE = "The image could not be saved; its images were given back."


@dataclass(frozen=True)
class Picture:
    """One rendered image of a job, before encoding."""

    image: PILImage.Image
    seed: int


@dataclass(frozen=True)
class RenderedBatch:
    """Jobs in claim order, each with its pictures; what the GPU hands to the host."""

    jobs: list[Job]
    pictures: list[list[Picture]]
    render_seconds: float


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


def image_finish(job: Job, picture: Picture) -> GeneratedImage:
    """The post-render stage of one picture: the bytes to store, watermarked, encoded and
    signed with its C2PA manifest (generation.provenance), under an image id chosen here
    that both carry. Runs on a pool thread and must not touch the database (the pool's
    threads hold no connection); it may raise, which fails this picture's job alone. (The
    output safety check runs on the whole batch before, on the model's device.)"""
    image_id = uuid.uuid4()
    marked = watermark_embed(picture.image, ref=watermark_ref(image_id))
    data = encode_image(
        marked,
        output_format=job.output_format,
        quality=job.output_compression,
        provenance=provenance(job, picture.seed),
        png_encoder=settings.GENERATION_PNG_ENCODER,
        png_compress_level=settings.GENERATION_PNG_COMPRESS_LEVEL,
    )
    source = source_credentials(job) if job.kind == Job.Kind.EDIT else None
    claims = ImageClaims(image_id, model_public_name(job.model), edited=source is not None)
    signed = content_credentials_sign(
        data, output_mime_type(job.output_format), claims=claims, source=source
    )
    return GeneratedImage(
        png=signed,
        width=marked.width,
        height=marked.height,
        seed=picture.seed,
        id=image_id,
    )


def source_credentials(job: Job) -> SourceImage:
    """An edit's source photo, as its images' manifests record it (their parent ingredient)."""
    with job.source_image.open("rb") as handle:
        data = handle.read()
    return SourceImage(data, mime_type(data))


def _finish_and_store(job: Job, index: int, picture: Picture) -> tuple[GeneratedImage, str]:
    image = image_finish(job, picture)
    return image, image_store(job=job, index=index, data=image.png)


def batch_settle(batch: RenderedBatch, *, worker: str, pool: Executor | None = None) -> set[Any]:
    """Finish and store every picture of the batch (on `pool`'s threads when given, else
    here), then settle it: the jobs whose pictures all made it succeed and are charged in
    one transaction; a job with a picture that failed is failed and refunded on its own.
    Returns the ids of the jobs that succeeded."""
    started = time.monotonic()
    images = sum(len(pictures) for pictures in batch.pictures)
    try:  # for the wait estimates; recorded here, off the GPU's path
        throughput_record(images=images, seconds=batch.render_seconds)
    except RedisError:  # the estimate misses one sample; the images must still be settled
        logger.warning("Throughput not recorded: Redis unreachable")
    # The last step's progress and events, before the jobs' completion (generation.worker's
    # step watcher leaves it to this stage).
    job_progress(job_ids=[job.pk for job in batch.jobs], worker=worker, progress=1.0)
    outputs: list[list[Future[tuple[GeneratedImage, str]]]] = []
    for job, pictures in zip(batch.jobs, batch.pictures, strict=True):
        outputs.append(
            [_submit(pool, _finish_and_store, job, n, p) for n, p in enumerate(pictures)]
        )
    stored: list[tuple[Job, list[GeneratedImage], list[str]]] = []
    for job, futures in zip(batch.jobs, outputs, strict=True):
        results, failure = [], None
        for future in futures:  # wait for all, so that no file is written after a failure
            try:
                results.append(future.result())
            except Exception as exc:
                failure = exc
        if failure is None:
            stored.append((job, [image for image, _ in results], [name for _, name in results]))
            continue
        with job_context(job_ids=[str(job.pk)], request_ids=[job.request_id]):
            logger.error("Storing the images of a job failed", exc_info=failure)
            for _, name in results:
                default_storage.delete(name)
            job_fail(job=job, worker=worker, code=OUTPUT_FAILED, message=OUTPUT_FAILED_MESSAGE)
    finished = jobs_settle(worker=worker, results=stored) if stored else set()
    logger.info(
        "Batch of %d jobs, %d images: stored and settled in %.0f ms",
        len(batch.jobs), images, (time.monotonic() - started) * 1000,
    )  # fmt: skip
    jobs_wake_waiting(workspace_ids=list({job.workspace_id for job in batch.jobs}))
    return finished


def _submit(pool: Executor | None, function: Callable[..., Any], *args: Any) -> Future[Any]:
    if pool is not None:
        return pool.submit(function, *args)
    future: Future[Any] = Future()
    try:
        future.set_result(function(*args))
    except Exception as exc:
        future.set_exception(exc)
    return future


_CLOSE = object()


class SettleStage:
    """Settles rendered batches while the caller renders the next one.

    Invariants (what makes pipelining safe):

    - Batches are settled in the order they were put, by one settler thread reading a FIFO
      queue: jobs finish in order of claim.
    - At most `depth` rendered batches wait (`put` blocks): host memory stays bounded, and a
      slow disk or database slows the GPU down instead of piling pictures up.
    - A job is settled by jobs_settle's conditional UPDATE (running, and still this worker's):
      exactly once, and not at all if the sweeper requeued it meanwhile. Its heartbeat goes on
      until it is settled, or until settling it failed, so that only then can the sweeper
      take it for a dead worker's.
    - The encoding pool's threads never touch the database; the settler thread closes its
      connection when it ends.
    - `close` returns when every batch put has been settled. A kill -9 at any point leaves
      the unsettled jobs running under a heartbeat that stops: the sweeper requeues them, and
      the next attempt replaces any file this one wrote. Nothing is charged before the
      settling transaction commits.
    """

    def __init__(
        self,
        *,
        worker: str,
        on_settled: Callable[[Iterable[Job]], None],
        depth: int,
        threads: int,
    ) -> None:
        self.worker = worker
        self.on_settled = on_settled
        self.batches: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="encode")
        self.settler = threading.Thread(target=self._settle_all, name="settler", daemon=True)
        self.settler.start()

    def put(self, batch: RenderedBatch) -> None:
        self.batches.put(batch)

    def drain(self) -> None:
        """Wait until every batch put so far is settled."""
        self.batches.join()

    def close(self) -> None:
        self.batches.put(_CLOSE)
        self.settler.join()
        self.pool.shutdown()

    def __enter__(self) -> SettleStage:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _settle_all(self) -> None:
        try:
            while (batch := self.batches.get()) is not _CLOSE:
                try:
                    with job_context(
                        job_ids=[str(job.pk) for job in batch.jobs],
                        request_ids=[job.request_id for job in batch.jobs],
                    ):
                        batch_settle(batch, worker=self.worker, pool=self.pool)
                except Exception:
                    # The database or storage failed for the whole batch: its jobs stay
                    # running without a heartbeat, and the sweeper requeues them.
                    logger.exception("Settling a batch of %d jobs failed", len(batch.jobs))
                finally:
                    self.on_settled(batch.jobs)
                    self.batches.task_done()
        finally:
            connection.close()
