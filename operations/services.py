"""Operator actions from the admin. Each calls the domain's own service and records an
audit entry (who, what, when) in the same transaction."""

from __future__ import annotations

from typing import Any

from django.db import models, transaction

from accounts.keys import api_key_revoke
from accounts.models import ApiKey, Membership, User, Workspace
from accounts.services import membership_remove, workspace_suspend, workspace_unsuspend
from billing.models import OperatorSwitches, Plan, QuotaOverride
from billing.quotas import quota_refund
from billing.switches import operator_switches_update
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


def _changes(before: models.Model | None, after: models.Model) -> str:
    """'field: old → new' for each concrete field that differs (all of them for a new row)."""
    parts = []
    for field in after._meta.concrete_fields:
        if field.name in ("updated_at", "updated_by"):
            continue
        new = getattr(after, field.attname)
        old = getattr(before, field.attname) if before is not None else None
        if before is None or old != new:
            parts.append(f"{field.name}: {old} → {new}" if before else f"{field.name}: {new}")
    return "; ".join(parts)


@transaction.atomic
def operator_plan_save(*, actor: User, plan: Plan) -> Plan:
    """Save a plan edited in the admin (its limits apply to every workspace on it from the
    next request), recording each changed field's old and new value."""
    before = Plan.objects.select_for_update().filter(pk=plan.pk).first() if plan.pk else None
    detail = _changes(before, plan)
    plan.save()
    audit_record(
        actor=actor, action="plan.change" if before else "plan.add", target=plan, detail=detail
    )
    return plan


@transaction.atomic
def operator_quota_override_save(*, actor: User, override: QuotaOverride) -> QuotaOverride:
    """Give one workspace another daily limit until a date (or change that override)."""
    if override.created_by_id is None:
        override.created_by = actor
    override.save()
    audit_record(
        actor=actor,
        action="workspace.quota_override",
        target=override.workspace,
        detail=f"{override.daily_images} images until {override.until or 'removed'}",
    )
    return override


@transaction.atomic
def operator_quota_override_delete(*, actor: User, override: QuotaOverride) -> None:
    workspace = override.workspace
    detail = f"override of {override.daily_images} images removed"
    override.delete()
    audit_record(actor=actor, action="workspace.quota_override", target=workspace, detail=detail)


@transaction.atomic
def operator_switches_save(*, actor: User, **fields: Any) -> OperatorSwitches:
    """Change the overload switches (in effect within seconds), recording what changed."""
    before = OperatorSwitches.objects.filter(pk=1).first()
    switches = operator_switches_update(user=actor, **fields)
    audit_record(
        actor=actor, action="switches.change", target=switches, detail=_changes(before, switches)
    )
    return switches
