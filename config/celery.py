"""The Celery app. Workers run `celery -A config worker`; see platform/Procfile."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import task_postrun, task_prerun
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("atelier")
app.config_from_object("django.conf:settings", namespace="CELERY")

# One queue per GPU lane (the plan picks the lane), one for housekeeping and one for webhook
# deliveries (network I/O, served by its own worker: never behind a GPU job).
LANE_QUEUES = ("gpu.priority", "gpu.standard", "gpu.free")
app.conf.task_queues = [Queue(name) for name in (*LANE_QUEUES, "maintenance", "webhooks")]
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def close_old_connections(**kwargs: object) -> None:
    """Around each task, close database connections past DB_CONN_MAX_AGE or broken, as
    Django does around each request (settings.CELERY_DB_REUSE_MAX keeps Celery from
    closing every connection instead)."""
    from django.db import close_old_connections

    close_old_connections()
