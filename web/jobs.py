"""What a job card shows: status, progress, and while it waits, its place in the queue."""

from __future__ import annotations

from typing import Any

from config.durations import wait_text
from generation.models import Job
from generation.selectors import job_queue_place


def job_card_context(job: Job) -> dict[str, Any]:
    place = job_queue_place(job) if job.status == Job.Status.QUEUED else None
    return {
        "job": job,
        "percent": round(job.progress * 100),
        "images": list(job.images.all()) if job.status == Job.Status.SUCCEEDED else [],
        "position": place.position if place else None,
        "wait_text": wait_text(max(round(place.wait_seconds), 1)) if place else "",
    }
