"""Waiting for a job from an async view, without a thread or a database connection per waiter.

The OpenAI-compatible API answers only once the images exist, and the native API does with
`Prefer: wait`. Their views are coroutines: while a job runs they sleep on the event loop until
its finish is heard on the one notification path (generation/notify.py), then read the job's
row once, on a thread borrowed from the event loop's shared pool, which then gives its
connection back. A web process thus holds thousands of waiting requests with a handful of
threads and no queries while they wait.

Under ASGI Django gives each request a thread of its own for synchronous code (asgiref's
ThreadSensitiveContext), kept until the request ends even when idle. `request_thread_release`
ends it before a long wait; Django starts a new one for whatever synchronous work follows.
Under a synchronous caller (WSGI, the test client) everything runs on the caller's thread,
inside its transaction, as Django does anyway.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from asgiref.sync import AsyncToSync, SyncToAsync, sync_to_async
from django.db import connections

from config.errors import DomainError
from generation.models import Job
from generation.notify import job_finished_wait
from generation.services import job_cancel


class JobWaitTimeout(Exception):
    def __init__(self, job: Job) -> None:
        super().__init__(f"job {job.id} is still {job.status}")
        self.job = job


def _under_sync_caller() -> bool:
    return getattr(AsyncToSync.executors, "current", None) is not None


def _release_connections() -> None:
    """Close this thread's database connections, unless a transaction holds them (tests)."""
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close()


def off_loop(function: Callable[..., Any]) -> Callable[..., Any]:
    """Run `function` off the event loop, then give its database connection back.

    Under ASGI on the loop's shared pool, so that no thread stays with the request; under a
    synchronous caller on the caller's thread, so that it sees the caller's transaction.
    """

    def run(*args: Any) -> Any:
        try:
            return function(*args)
        finally:
            _release_connections()

    return sync_to_async(run, thread_sensitive=_under_sync_caller())


async def request_thread_release() -> None:
    """End the request's own thread (and its database connection) before a long wait."""
    context = SyncToAsync.thread_sensitive_context.get(None)
    if context is None or _under_sync_caller():
        return
    executor = SyncToAsync.context_to_thread_executor.get(context)
    if executor is None:
        return
    await sync_to_async(_release_connections)()  # on that thread: its connections
    SyncToAsync.context_to_thread_executor.pop(context, None)
    executor.shutdown(wait=False)


def _job_row(job_id: str) -> Job:
    return Job.objects.prefetch_related("images").get(pk=job_id)


async def job_wait(job_id: str, *, timeout: float) -> Job:
    """The job once it is finished; JobWaitTimeout (holding its last state) after `timeout` s.

    The database is read once, when the wait ends (a finish that was never heard, such as
    one published while Redis was away, is still seen then)."""
    await job_finished_wait(job_id, timeout=timeout)
    job = await off_loop(_job_row)(job_id)
    if not job.is_finished:
        raise JobWaitTimeout(job)
    return job


def _abandon(job_id: str) -> Job:
    job = Job.objects.get(pk=job_id)
    if not job.is_finished:
        with contextlib.suppress(DomainError):  # it finished in the meantime
            job = job_cancel(job=job)
    return job


async def job_abandon(job_id: str) -> Job:
    """Cancel the job if it is not finished (its images are given back); return its state.

    A client that stopped waiting gets nothing, so it should not pay, and the GPUs should not
    work for nobody.
    """
    return await off_loop(_abandon)(job_id)
