"""The Celery app. Workers run `celery -A config worker`; see platform/Procfile."""

from __future__ import annotations

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("atelier")
app.config_from_object("django.conf:settings", namespace="CELERY")

# One queue per GPU lane (the plan picks the lane) and one for housekeeping.
LANE_QUEUES = ("gpu.priority", "gpu.standard", "gpu.free")
app.conf.task_queues = [Queue(name) for name in (*LANE_QUEUES, "maintenance")]
app.autodiscover_tasks()
