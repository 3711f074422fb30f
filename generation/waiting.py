"""Waiting for a job from an async view, without a thread or a database connection per waiter.

The OpenAI-compatible API answers only once the images exist. Its views are coroutines: while
a job runs they sleep on the event loop, waking to read the job's row (one short query on a
borrowed thread, then the connection is given back), so a web process holds thousands of
waiting requests without a thread or a connection each.
"""

from __future__ import annotations

import asyncio
import contextlib

from asgiref.sync import sync_to_async
from django.db import connection

from config.api_errors import ApiError
from generation.models import Job
from generation.services import job_cancel

FIRST_POLL = 0.1  # seconds; the wait grows by half each time, up to LAST_POLL
LAST_POLL = 1.0


class JobWaitTimeout(Exception):
    def __init__(self, job: Job) -> None:
        super().__init__(f"job {job.id} is still {job.status}")
        self.job = job


def _release_connection() -> None:
    # Inside a transaction (a caller's atomic block, as in tests) the connection is not ours.
    if not connection.in_atomic_block:
        connection.close()


@sync_to_async
def _job_row(job_id: str) -> Job:
    try:
        return Job.objects.prefetch_related("images").get(pk=job_id)
    finally:
        _release_connection()


async def job_wait(job_id: str, *, timeout: float) -> Job:
    """The job once it is finished; JobWaitTimeout (holding its last state) after `timeout` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    delay = FIRST_POLL
    while True:
        job = await _job_row(job_id)
        remaining = deadline - loop.time()
        if job.is_finished:
            return job
        if remaining <= 0:
            raise JobWaitTimeout(job)
        await asyncio.sleep(min(delay, remaining))
        delay = min(delay * 1.5, LAST_POLL)


@sync_to_async
def job_abandon(job_id: str) -> Job:
    """Cancel the job if it is still queued (its images are given back); return its state.

    A client that stopped waiting gets nothing, so it should not pay, and the GPUs should not
    work for nobody. A job already running is left to finish: it is kept, and charged.
    """
    try:
        job = Job.objects.get(pk=job_id)
        if job.status == Job.Status.QUEUED:
            with contextlib.suppress(ApiError):  # it started in the meantime
                job = job_cancel(job=job)
        return job
    finally:
        _release_connection()
