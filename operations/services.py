"""Operator actions from the admin. Each calls the domain's own service and records an
audit entry (who, what, when) in the same transaction."""

from __future__ import annotations

from django.db import models, transaction

from accounts.models import ApiKey, Membership, User, Workspace
from accounts.services import (
    api_key_revoke,
    membership_remove,
    workspace_suspend,
    workspace_unsuspend,
)
from billing.quotas import quota_refund
from config.errors import DomainError
from generation.models import Job
from generation.services import job_cancel, job_retry, jobs_cancel_for_workspace
from operations.models import AuditEntry


def audit_record(*, actor: User, action: str, target: models.Model, detail: str = "") -> AuditEntry:
    return AuditEntry.objects.create(
        actor=actor,
        action=action,
        target_type=target._meta.label,
        target_id=str(target.pk),
        target_repr=str(target)[:300],
        detail=detail,
    )


@transaction.atomic
def operator_job_cancel(*, actor: User, job: Job) -> bool:
    """Cancel a queued or running job; its images go back to the workspace's quota."""
    try:
        job_cancel(job=job)
    except DomainError:
        return False
    audit_record(actor=actor, action="job.cancel", target=job, detail="images released")
    return True


@transaction.atomic
def operator_job_retry(*, actor: User, job: Job) -> Job | None:
    """Submit a failed or cancelled job again as a new job (charged like any job)."""
    retry = job_retry(job=job)
    audit_record(actor=actor, action="job.retry", target=job, detail=f"new job {retry.pk}")
    return retry


@transaction.atomic
def operator_job_refund(*, actor: User, job: Job) -> int:
    """Give a job's images back to the quota: cancels it if still active. Returns images."""
    if not job.is_finished:
        if not operator_job_cancel(actor=actor, job=job):
            return 0
        return job.num_images
    refunded = quota_refund(job=job)
    if refunded:
        audit_record(actor=actor, action="job.refund", target=job, detail=f"{refunded} images")
    return refunded


@transaction.atomic
def operator_workspace_suspend(*, actor: User, workspace: Workspace) -> bool:
    """Suspend at once: no new jobs, queued and running ones cancelled and refunded (running
    ones stop at their next step), images not served until unsuspended."""
    changed = workspace_suspend(workspace=workspace)
    if changed:
        cancelled = jobs_cancel_for_workspace(workspace=workspace)
        detail = f"{cancelled} jobs cancelled and refunded"
        audit_record(actor=actor, action="workspace.suspend", target=workspace, detail=detail)
    return changed


@transaction.atomic
def operator_workspace_unsuspend(*, actor: User, workspace: Workspace) -> bool:
    changed = workspace_unsuspend(workspace=workspace)
    if changed:
        audit_record(actor=actor, action="workspace.unsuspend", target=workspace)
    return changed


@transaction.atomic
def operator_api_key_revoke(*, actor: User, key: ApiKey) -> bool:
    if not key.is_active:
        return False
    api_key_revoke(key=key)
    audit_record(actor=actor, action="api_key.revoke", target=key)
    return True


@transaction.atomic
def operator_membership_remove(*, actor: User, membership: Membership) -> list[ApiKey]:
    """Take a person out of a workspace; the keys they made in it are revoked with it."""
    workspace, email = membership.workspace, membership.user.email
    revoked = membership_remove(membership=membership)
    prefixes = ", ".join(f"{key.prefix}…" for key in revoked) or "none"
    audit_record(
        actor=actor,
        action="membership.remove",
        target=workspace,
        detail=f"{email} removed; API keys revoked: {prefixes}",
    )
    return revoked
