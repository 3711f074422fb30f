"""The output safety check, between render and store: a flagged image is never kept.

SAFETY_CHECKER_MODEL names a folder holding a diffusers StableDiffusionSafetyChecker (and its
CLIP preprocessor); empty, there is no check. The worker passes each rendered batch through
it at once, on the model's device (generation.pipeline.safety_flags); a job with a flagged
image fails as `output_refused`, is refunded, and its prompt (never the image) is kept as an
OutputRefusal for operators to review. The job's moderation level, from its plan, makes the
check stricter.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from django.conf import settings
from django.db import transaction
from PIL import Image as PILImage

from billing.models import ModerationLevel
from generation.models import Job, OutputRefusal
from generation.services import job_fail

logger = logging.getLogger(__name__)

OUTPUT_REFUSED = "output_refused"
# What the job's owner reads (stored on the job, like the worker's other failure messages).
OUTPUT_REFUSED_MESSAGE = (
    "The image that was made did not pass our safety check, so it was not kept; its images "
    "were given back. Rewording the prompt or trying another seed usually helps."
)


def level_adjustment(level: str) -> float:
    """What a moderation level adds to the checker's scores (above 0: flags more)."""
    return settings.SAFETY_STRICT_ADJUSTMENT if level == ModerationLevel.STRICT else 0.0


@dataclass(frozen=True)
class OutputFlagged:
    """A job whose rendered images the check flagged (`flagged` of `rendered`)."""

    flagged: int
    rendered: int


def outputs_flagged(
    pipeline: ModuleType, jobs: list[Job], pictures: list[PILImage.Image]
) -> dict[Any, int]:
    """How many of each job's pictures the safety check flags (jobs with none are left out).

    `pictures` are the batch's, in job order, `num_images` each."""
    folder = settings.SAFETY_CHECKER_MODEL
    if not folder:
        return {}
    owners = [job for job in jobs for _ in range(job.num_images)]
    flags = pipeline.safety_flags(
        pictures,
        adjustments=[level_adjustment(job.moderation_level) for job in owners],
        folder=folder,
    )
    flagged: dict[Any, int] = {}
    for job, flag in zip(owners, flags, strict=True):
        if flag:
            flagged[job.pk] = flagged.get(job.pk, 0) + 1
    return flagged


def previews_checked(
    pipeline: ModuleType, jobs: list[Job], on_preview: Callable[[int, int, PILImage.Image], None]
) -> Callable[[int, int, PILImage.Image], None]:
    """`on_preview` (which publishes a running job's partial image) behind the safety check:
    a preview the check flags is never shown. Unchanged when there is no checker."""
    folder = settings.SAFETY_CHECKER_MODEL
    if not folder:
        return on_preview
    owners = [job for job in jobs for _ in range(job.num_images)]

    def checked(step: int, item: int, picture: PILImage.Image) -> None:
        level = level_adjustment(owners[item].moderation_level)
        if not pipeline.safety_flags([picture], adjustments=[level], folder=folder)[0]:
            on_preview(step, item, picture)

    return checked


@transaction.atomic
def job_refuse_output(*, job: Job, worker: str, flagged: int) -> bool:
    """Fail a running job whose output was flagged, refund it, and record it for review."""
    if not job_fail(job=job, worker=worker, code=OUTPUT_REFUSED, message=OUTPUT_REFUSED_MESSAGE):
        return False
    OutputRefusal.objects.create(
        workspace_id=job.workspace_id,
        user_id=job.user_id,
        job=job,
        prompt=job.prompt,
        negative_prompt=job.negative_prompt,
        moderation_level=job.moderation_level,
        images_flagged=flagged,
    )
    logger.info("Output refused: %d image(s) flagged", flagged, extra={"code": OUTPUT_REFUSED})
    return True
