"""What a job card shows: status, progress, and while it waits, its place in the queue."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy

from config.durations import wait_text
from generation.models import Job
from generation.selectors import job_queue_place

# Why a job failed, in the reader's language: the job keeps the worker's English sentence as
# the record (workers have no reader), the card says it again from the code.
FAILURES = {
    "out_of_memory": gettext_lazy(
        "The GPU ran out of memory for this job. A smaller size or fewer images may fit."
    ),
    "generation_failed": gettext_lazy("The image could not be generated."),
    "time_limit_exceeded": gettext_lazy("The job ran past its time limit."),
    "deadline_exceeded": gettext_lazy("The job did not finish in time."),
    "worker_lost": gettext_lazy("The worker running this job stopped too many times."),
    "output_refused": gettext_lazy(
        "The image that was made did not pass our safety check, so it was not kept. "
        "Rewording the prompt or trying another seed usually helps."
    ),
}


def job_failure_text(job: Job) -> str:
    if job.status != Job.Status.FAILED:
        return ""
    known = FAILURES.get(job.error_code or "")
    return str(known or job.error_message or gettext_lazy("Generation failed."))


def job_card_context(job: Job) -> dict[str, Any]:
    place = job_queue_place(job) if job.status == Job.Status.QUEUED else None
    return {
        "job": job,
        "percent": round(job.progress * 100),
        "images": list(job.images.all()) if job.status == Job.Status.SUCCEEDED else [],
        "failure": job_failure_text(job),
        "position": place.position if place else None,
        "wait_text": wait_text(max(round(place.wait_seconds), 1)) if place else "",
    }
