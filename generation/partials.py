"""Partial images: previews of running jobs, for OpenAI's streamed image requests.

A job admitted with `stream=true` and `partial_images` N (generation/openai_stream.py) gets
N previews at evenly spaced steps of its render. The pipeline decodes them cheaply from the
intermediate latents (generation.pipeline.preview_decode); this module says which items of
a batch want one after which step, encodes each like the final image and publishes it on
the job-events channel (generation.notify.job_partial_publish), where the stream hears it.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from PIL import Image as PILImage

from generation.images import encode_image
from generation.models import Job
from generation.notify import job_partial_publish

PreviewCallback = Callable[[int, int, PILImage.Image], None]


def denoising_steps(job: Job) -> int:
    """How many steps the pipeline runs for the job: an edit runs `strength` of them."""
    if job.kind != Job.Kind.EDIT or job.strength is None:
        return job.steps
    return max(int(job.steps * job.strength), 1)


def partials_plan(
    jobs: list[Job], *, preview_steps: Callable[[int, int], list[int]]
) -> tuple[dict[int, list[int]], PreviewCallback]:
    """For a batch (its items in job order, num_images each): the items to preview after each
    step, and the callback that publishes a preview. A job's first image is previewed."""
    previews: dict[int, list[int]] = {}
    owners: dict[int, tuple[Job, dict[int, int]]] = {}
    item = 0
    for job in jobs:
        if job.partial_images:
            steps = preview_steps(denoising_steps(job), job.partial_images)
            for step in steps:
                previews.setdefault(step, []).append(item)
            owners[item] = (job, {step: index for index, step in enumerate(steps)})
        item += job.num_images

    def on_preview(step: int, item: int, picture: PILImage.Image) -> None:
        job, indices = owners[item]
        partial: dict[str, Any] = {
            "partial_image_index": indices[step],
            "size": f"{job.width}x{job.height}",
            "output_format": job.output_format,
            "b64_json": base64.b64encode(
                encode_image(
                    picture,
                    output_format=job.output_format,
                    quality=job.output_compression,
                    provenance={"model": job.model, "job": str(job.id), "preview": "true"},
                )
            ).decode(),
        }
        job_partial_publish(job.pk, partial)

    return previews, on_preview
