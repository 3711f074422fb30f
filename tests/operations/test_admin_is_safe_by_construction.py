"""Walks every ModelAdmin (and every inline) of the admin site: nothing that holds job, image,
quota or billing state can be added, changed or deleted by a form; what stays editable is
listed here with the audited service its saves go through."""

from __future__ import annotations

from typing import Any

import pytest
from allauth.account.models import EmailAddress
from django.contrib import admin
from django.contrib.auth.models import Group
from django.db import models
from django.test import Client, RequestFactory

from accounts.models import ApiKey, Membership, User, Workspace
from billing.models import (
    AllowanceCounter,
    CheckoutSession,
    OperatorSwitches,
    Plan,
    PlanChange,
    QuotaCounter,
    QuotaLedgerEntry,
    QuotaOverride,
    StripeEvent,
    Subscription,
)
from generation.models import (
    Image,
    Job,
    OutputRefusal,
    PolicyRefusal,
    PolicyRule,
    PolicyRuleTranslation,
    QueueClock,
    QueueFlow,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from operations.models import AuditEntry
from tests.conftest import Person

pytestmark = pytest.mark.django_db

# Money, quota, job and queue state, keys and the audit log: read-only everywhere in the admin.
READ_ONLY = {
    Job, Image, QueueFlow, QueueClock, QuotaLedgerEntry, QuotaCounter, AllowanceCounter,
    Subscription, CheckoutSession, PlanChange, StripeEvent, ApiKey, AuditEntry,
    WebhookDelivery, WebhookAttempt,
}  # fmt: skip
# Of those, what no deletion elsewhere may take with it. (A webhook endpoint's deliveries go
# with the endpoint, as when its workspace's owners delete it on the site.)
KEPT = READ_ONLY - {WebhookDelivery, WebhookAttempt}

# Editable, and why that is safe: each save goes through an audited operator service.
EDITABLE = {
    Plan: "operator_plan_save (audited, old and new values); plans are never deleted",
    QuotaOverride: "operator_quota_override_save / _delete (audited)",
    OperatorSwitches: "operator_switches_save (audited)",
    Workspace: "name only; suspension, members and overrides through audited services",
    Membership: "inline of a workspace: saves audited, removal through operator_membership_remove",
    PolicyRule: "the content policy's terms: no money, quota or job state",
    PolicyRuleTranslation: "a policy rule's words in another language",
    WebhookEndpoint: "a workspace's webhook URLs (its secret read-only)",
    PolicyRefusal: "reviewed flag only",
    OutputRefusal: "reviewed flag only (a refused output's prompt, for review)",
    User: "people's accounts (Django's own user admin)",
    Group: "Django's permission groups",
    EmailAddress: "allauth's addresses (verification state of a login)",
}

# Fields of the editable models that decide money, quota or job state; a form may show them
# only where its admin saves through the service named above.
SERVICE_SAVED = {Plan, QuotaOverride, OperatorSwitches}


def every_admin() -> list[tuple[type[models.Model], Any]]:
    found: list[tuple[type[models.Model], Any]] = []
    for model, model_admin in admin.site._registry.items():
        found.append((model, model_admin))
        for inline in model_admin.get_inline_instances(superuser_request()):
            found.append((inline.model, inline))
        for inline_class in model_admin.inlines:
            found.append((inline_class.model, inline_class(model, admin.site)))
    return found


def superuser_request() -> Any:
    request = RequestFactory().get("/admin/")
    request.user = User(email="op@example.com", is_staff=True, is_superuser=True, is_active=True)
    return request


def test_every_admin_is_classified_as_read_only_or_saved_through_a_service() -> None:
    unclassified = {
        model.__name__ for model, _ in every_admin() if model not in READ_ONLY | set(EDITABLE)
    }
    assert not unclassified, f"classify these admins in this test: {sorted(unclassified)}"


def test_no_admin_or_inline_can_add_change_or_delete_money_quota_or_job_state() -> None:
    request = superuser_request()
    open_doors = []
    for model, model_admin in every_admin():
        if model not in READ_ONLY:
            continue
        is_inline = isinstance(model_admin, admin.options.InlineModelAdmin)
        add = (
            model_admin.has_add_permission(request, None)
            if is_inline
            else model_admin.has_add_permission(request)
        )
        for name, allowed in (
            ("add", add),
            ("change", model_admin.has_change_permission(request, None)),
            ("delete", model_admin.has_delete_permission(request, None)),
        ):
            if allowed:
                open_doors.append(f"{type(model_admin).__name__} ({model.__name__}) can {name}")
        if "delete_selected" in model_admin.get_actions(request) if not is_inline else False:
            open_doors.append(f"{type(model_admin).__name__} offers delete_selected")
    assert not open_doors


def test_editable_admins_that_decide_quota_save_through_a_service() -> None:
    for model in SERVICE_SAVED:
        model_admin = admin.site._registry[model]
        assert type(model_admin).save_model is not admin.ModelAdmin.save_model, model
        assert not model_admin.has_delete_permission(superuser_request()) or (
            type(model_admin).delete_model is not admin.ModelAdmin.delete_model
        ), model


def test_nothing_whose_deletion_would_take_read_only_state_with_it_can_be_deleted() -> None:
    """Deleting a workspace would delete its jobs and ledger; deleting a person, their free
    allowance's counters: such rows are closed (suspended, deactivated), never deleted."""
    request = superuser_request()
    for model, model_admin in every_admin():
        if model in READ_ONLY:
            continue
        cascades = [
            rel.related_model.__name__
            for rel in model._meta.related_objects
            if rel.on_delete is models.CASCADE and rel.related_model in KEPT
        ]
        if cascades:
            assert not model_admin.has_delete_permission(request, None), (model, cascades)


def test_editable_forms_show_no_field_of_job_quota_or_billing_state() -> None:
    """Forms of the other editable admins name no field that points at read-only state, and
    a workspace's suspension is not a form field (it is the audited buttons)."""
    request = superuser_request()
    for model, model_admin in every_admin():
        if model in READ_ONLY or model in SERVICE_SAVED:
            continue
        if isinstance(model_admin, admin.options.InlineModelAdmin):
            fields = model_admin.get_formset(request).form.base_fields
        else:
            fields = model_admin.get_form(request).base_fields
        for name in fields:
            field = (
                model._meta.get_field(name)
                if name in {f.name for f in model._meta.get_fields()}
                else None
            )
            if field is not None and field.is_relation and field.related_model in READ_ONLY:
                pytest.fail(f"{model.__name__}.{name} edits {field.related_model.__name__}")
        if model is Workspace:
            assert "suspended_at" not in fields


def test_a_job_cannot_be_added_or_edited_by_hand(admin_client: Client, alice: Person) -> None:
    response = alice.client().post(
        "/api/v1/generations", {"prompt": "a red circle", "width": 64, "height": 64}, format="json"
    )
    job = Job.objects.get(pk=response.json()["id"])
    assert admin_client.get("/admin/generation/job/add/").status_code == 403
    page = admin_client.get(f"/admin/generation/job/{job.pk}/change/")
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    posted = admin_client.post(
        f"/admin/generation/job/{job.pk}/change/", {"status": "succeeded", "num_images": 4}
    )
    assert posted.status_code == 403
    assert (
        admin_client.post(f"/admin/generation/job/{job.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    job.refresh_from_db()
    assert (job.status, job.num_images) == (Job.Status.QUEUED, 1)


def test_a_plan_saved_in_the_admin_is_audited_with_old_and_new_values(
    admin_client: Client, admin_user: User
) -> None:
    plan = Plan.objects.get(slug="pro")
    page = admin_client.get(f"/admin/billing/plan/{plan.pk}/change/")
    form = page.context["adminform"].form
    data = {name: form[name].value() for name in form.fields}
    data = {k: ("" if v is None else v) for k, v in data.items() if v is not False}
    data["daily_images"] = 600
    response = admin_client.post(f"/admin/billing/plan/{plan.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    plan.refresh_from_db()
    assert plan.daily_images == 600
    entry = AuditEntry.objects.get(action="plan.change")
    assert entry.actor == admin_user
    assert entry.detail == "daily_images: 500 → 600"


def test_a_quota_override_set_in_the_admin_is_audited(
    admin_client: Client, admin_user: User, alice: Person
) -> None:
    response = admin_client.post(
        "/admin/billing/quotaoverride/add/",
        {"workspace": alice.workspace.pk, "daily_images": 10, "reason": "launch day"},
    )
    assert response.status_code == 302
    override = QuotaOverride.objects.get(workspace=alice.workspace)
    assert override.created_by == admin_user
    entry = AuditEntry.objects.get(action="workspace.quota_override")
    assert (entry.actor, entry.target_id) == (admin_user, str(alice.workspace.pk))
