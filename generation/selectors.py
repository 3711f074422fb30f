from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import Workspace
from generation.models import Image, Job, WebhookDelivery, WebhookEndpoint

# A job's place in the queue is the fair queue's to say; callers found it here before.
from generation.queue import QueuePlace as QueuePlace
from generation.queue import job_queue_place as job_queue_place


def jobs_for(workspace: Workspace) -> QuerySet[Job]:
    return Job.objects.filter(workspace=workspace).prefetch_related("images")


def images_for(workspace: Workspace) -> QuerySet[Image]:
    """The workspace's images; none while it is suspended (they come back on unsuspend)."""
    return Image.objects.filter(workspace=workspace, workspace__suspended_at__isnull=True)


def webhook_endpoints_for(workspace: Workspace) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.filter(workspace=workspace)


def webhook_deliveries_for(workspace: Workspace) -> QuerySet[WebhookDelivery]:
    """The workspace's deliveries (per-job webhooks' and its endpoints'), newest first."""
    return WebhookDelivery.objects.filter(workspace=workspace).prefetch_related("tries")
