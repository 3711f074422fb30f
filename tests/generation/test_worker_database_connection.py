"""A worker keeps its database connection from task to task (a new PostgreSQL connection
per task made every no-op ticket cost milliseconds), yet drops a broken one."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from celery.fixups.django import DjangoWorkerFixup
from django.db import connection

from config.celery import app, close_old_connections

TASK = SimpleNamespace(request=SimpleNamespace(is_eager=False))


def run_tasks(fixup: DjangoWorkerFixup, count: int) -> None:
    """What a worker does around each task: Celery's Django fixup, then ours."""
    for _ in range(count):
        fixup.on_task_prerun(sender=TASK)
        close_old_connections()
        with connection.cursor() as cursor:  # the task's queries
            cursor.execute("SELECT 1")
        fixup.on_task_postrun(sender=TASK)
        close_old_connections()


@pytest.mark.django_db(transaction=True)
def test_worker_reuses_its_database_connection_between_tasks() -> None:
    fixup = DjangoWorkerFixup(app)
    connection.close()  # start from a healthy connection, whatever an earlier test left
    connection.ensure_connection()
    first = connection.connection
    run_tasks(fixup, 20)
    assert connection.connection is first


@pytest.mark.django_db(transaction=True)
def test_worker_drops_a_broken_connection_before_the_next_task() -> None:
    fixup = DjangoWorkerFixup(app)
    connection.ensure_connection()
    first = connection.connection
    first.close()  # the server went away
    run_tasks(fixup, 1)
    assert connection.connection is not first
    assert connection.is_usable()
