"""Celery tasks: thin entries that take ids and call the worker or a service.

Each is a no-op when there is nothing to do, so late acks and redeliveries are safe.
"""

from __future__ import annotations

import logging
import threading
import time

from celery import shared_task
from celery.signals import worker_ready
from django.conf import settings

from config.metrics import (
    SWEEPER_FAILED,
    SWEEPER_REQUEUED,
    TICKETS_RESENT,
    worker_metrics_serve,
)
from generation.maintenance import (
    images_expire,
    jobs_sweep,
    source_photos_expire,
    webhook_deliveries_expire,
)
from generation.queue import worker_alive
from generation.tickets import tickets_resend
from generation.webhooks import webhook_attempt
from generation.worker import pipeline_module, ticket_run, worker_id

logger = logging.getLogger(__name__)


@worker_ready.connect
def _warm_up(**kwargs: object) -> None:
    """Report this worker alive for the wait estimates, and load the model before the first
    job. A model that fails to load fails its jobs readably instead of stopping the worker."""
    worker = worker_id()

    def report_alive() -> None:
        while True:
            try:
                worker_alive(worker, settings.WORKER_LANES)
            except Exception:
                logger.exception("Could not report the worker alive")
            time.sleep(settings.WORKER_ALIVE_INTERVAL)

    if settings.WORKER_METRICS_PORT:
        worker_metrics_serve(port=settings.WORKER_METRICS_PORT, addr=settings.WORKER_METRICS_ADDR)
    try:
        pipeline_module().warm_up()
    except Exception:
        logger.exception("Warm-up failed; jobs will report the error")
    # Counted by the wait estimates only once it can take a job.
    threading.Thread(target=report_alive, name="alive", daemon=True).start()


@shared_task(name="generation.run_job", acks_late=True, ignore_result=True)
def run_job(job_id: str) -> None:
    """A ticket to run queued jobs: a doorbell that wakes a worker (admission rings while a
    lane has few waiting), and the database decides what runs (generation.worker.ticket_run,
    in fair order)."""
    ticket_run(job_id)


@shared_task(name="generation.sweep_jobs", ignore_result=True)
def sweep_jobs() -> None:
    result = jobs_sweep()
    SWEEPER_REQUEUED.inc(result.requeued)
    SWEEPER_FAILED.inc(result.failed)
    if result.requeued or result.failed:
        logger.warning("Sweep: %d requeued, %d failed", result.requeued, result.failed)
    resent = tickets_resend()
    TICKETS_RESENT.inc(resent)
    if resent:
        logger.warning("Sweep: %d tickets sent again for queued jobs nobody took", resent)


@shared_task(name="generation.expire_images", ignore_result=True)
def expire_images() -> None:
    deleted = images_expire()
    if deleted:
        logger.info("Deleted %d images past their plan's retention", deleted)
    photos = source_photos_expire()
    if photos:
        logger.info("Deleted %d uploaded photos of edits that made no image", photos)
    deliveries = webhook_deliveries_expire()
    if deliveries:
        logger.info("Deleted %d webhook deliveries past their retention", deliveries)


@shared_task(
    name="generation.deliver_webhook",
    acks_late=True,
    ignore_result=True,
    soft_time_limit=60,
    time_limit=90,
)
def deliver_webhook(delivery_id: str) -> None:
    """One attempt of a webhook delivery (the `webhooks` queue, settings.CELERY_TASK_ROUTES);
    the next one, if it should be retried, is queued with its backoff as a countdown."""
    delay = webhook_attempt(delivery_id=delivery_id)
    if delay is not None:
        deliver_webhook.apply_async((delivery_id,), countdown=delay)
