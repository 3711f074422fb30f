from __future__ import annotations

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client
from django.utils import timezone

from billing.models import QuotaLedgerEntry, QuotaOverride
from billing.quotas import quota_capture
from billing.selectors import quota_status
from generation.models import Job
from generation.services import job_fail
from operations.models import AuditEntry
from tests.conftest import Person, small_job

pytestmark = pytest.mark.django_db


def submit(person: Person, **overrides: object) -> Job:
    response = person.client().post("/api/v1/generations", small_job(**overrides), format="json")
    assert response.status_code == 202, response.content
    return Job.objects.get(pk=response.json()["id"])


def act(admin_client: Client, model: str, action: str, *pks: object) -> str:
    response = admin_client.post(
        f"/admin/{model}/",
        {"action": action, "_selected_action": [str(pk) for pk in pks]},
        follow=True,
    )
    assert response.status_code == 200
    return response.content.decode()


def test_cancelling_a_job_in_the_admin_gives_its_images_back_and_is_audited(
    admin_client: Client, admin_user: object, alice: Person
) -> None:
    job = submit(alice)
    assert quota_status(workspace=alice.workspace).used == 1
    page = act(admin_client, "generation/job", "cancel", job.pk)
    assert "Cancelled 1 job(s) and gave their images back." in page
    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED
    assert quota_status(workspace=alice.workspace).used == 0
    assert QuotaLedgerEntry.objects.filter(job=job, kind="release").exists()
    entry = AuditEntry.objects.get(action="job.cancel")
    assert (entry.actor, entry.target_id) == (admin_user, str(job.pk))


def test_refunding_a_succeeded_job_gives_its_images_back_once(
    admin_client: Client, alice: Person
) -> None:
    job = submit(alice)
    Job.objects.filter(pk=job.pk).update(status=Job.Status.SUCCEEDED, finished_at=timezone.now())
    quota_capture(job=job)
    assert "Gave 1 image(s) back" in act(admin_client, "generation/job", "refund", job.pk)
    assert quota_status(workspace=alice.workspace).used == 0
    assert "Gave 0 image(s) back" in act(admin_client, "generation/job", "refund", job.pk)
    assert quota_status(workspace=alice.workspace).used == 0
    assert AuditEntry.objects.filter(action="job.refund").count() == 1


def test_retrying_a_failed_job_submits_a_new_one_with_the_same_seed(
    admin_client: Client, alice: Person
) -> None:
    job = submit(alice, seed=11)
    job.status = Job.Status.RUNNING
    job.worker = "w"
    job.save()
    job_fail(job=job, worker="w", code="boom", message="it broke")
    page = act(admin_client, "generation/job", "retry", job.pk)
    retry = Job.objects.exclude(pk=job.pk).get()
    assert f"resubmitted as {retry.pk}" in page
    assert (retry.status, retry.seed, retry.prompt) == ("queued", 11, job.prompt)
    assert quota_status(workspace=alice.workspace).used == 1  # the retry is charged once


def test_a_running_job_cannot_be_retried(admin_client: Client, alice: Person) -> None:
    job = submit(alice)
    page = act(admin_client, "generation/job", "retry", job.pk)
    assert "only failed or cancelled jobs can be retried" in page
    assert Job.objects.count() == 1


def test_suspending_a_workspace_stops_its_submissions_until_lifted(
    admin_client: Client, alice: Person
) -> None:
    page = act(admin_client, "accounts/workspace", "suspend", alice.workspace.pk)
    assert "Suspended 1 workspace(s)" in page
    refused = alice.client().post("/api/v1/generations", small_job(), format="json")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "workspace_suspended"
    act(admin_client, "accounts/workspace", "unsuspend", alice.workspace.pk)
    assert alice.client().post("/api/v1/generations", small_job(), format="json").status_code == 202
    actions = list(AuditEntry.objects.order_by("created_at").values_list("action", flat=True))
    assert actions == ["workspace.suspend", "workspace.unsuspend"]


def test_revoking_a_key_in_the_admin_is_audited(admin_client: Client, alice: Person) -> None:
    key = alice.workspace.api_keys.get()
    assert "Revoked 1 key(s)." in act(admin_client, "accounts/apikey", "revoke", key.pk)
    assert alice.client().get("/api/v1/me").status_code == 401
    assert AuditEntry.objects.get().action == "api_key.revoke"


def test_the_dashboard_counts_the_hours_jobs_queues_and_failures(
    admin_client: Client, alice: Person
) -> None:
    submit(alice)
    page = admin_client.get("/admin/").content.decode()
    assert "Images per minute by plan" in page
    assert "Queue by lane, now" in page and '<b data-figure="failures">0</b>' in page
    # One image queued in the free lane, ahead of a new workspace's job; no worker is alive.
    assert '<tr data-lane="free"><th scope="row">Free</th><td>1</td>' in page
    assert '<th scope="row">Queued</th><td>1</td>' in page


def test_the_audit_log_is_read_only(admin_client: Client, alice: Person) -> None:
    act(admin_client, "accounts/workspace", "suspend", alice.workspace.pk)
    entry = AuditEntry.objects.get()
    assert admin_client.get("/admin/operations/auditentry/").status_code == 200
    assert admin_client.get("/admin/operations/auditentry/add/").status_code == 403
    admin_client.post(f"/admin/operations/auditentry/{entry.pk}/delete/", {"post": "yes"})
    assert AuditEntry.objects.filter(pk=entry.pk).exists()


def test_a_refused_retry_of_an_edit_keeps_the_original_jobs_photo(
    admin_client: Client, alice: Person
) -> None:
    job = submit(alice)
    job.kind, job.strength = Job.Kind.EDIT, 0.5
    job.source_image.save("photo.png", ContentFile(b"\x89PNG alice's photo"), save=False)
    job.status, job.worker = Job.Status.RUNNING, "w"
    job.save()
    job_fail(job=job, worker="w", code="boom", message="it broke")
    QuotaOverride.objects.create(workspace=alice.workspace, daily_images=0)  # no room left

    page = act(admin_client, "generation/job", "retry", job.pk)

    assert "quota" in page and Job.objects.count() == 1  # refused, nothing new
    assert default_storage.exists(job.source_image.name)  # the original's photo is intact
