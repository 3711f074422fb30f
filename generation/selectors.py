from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import Workspace
from generation.models import Image, Job


def jobs_for(workspace: Workspace) -> QuerySet[Job]:
    return Job.objects.filter(workspace=workspace).prefetch_related("images")


def images_for(workspace: Workspace) -> QuerySet[Image]:
    return Image.objects.filter(workspace=workspace)
