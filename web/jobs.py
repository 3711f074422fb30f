"""What a job card shows: status, progress, and while it waits, its place in the queue."""

from __future__ import annotations

from typing import Any

from generation.models import Job


def job_card_context(job: Job) -> dict[str, Any]:
    return {
        "job": job,
        "percent": round(job.progress * 100),
        "images": list(job.images.all()) if job.status == Job.Status.SUCCEEDED else [],
    }
