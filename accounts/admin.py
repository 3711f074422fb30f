from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from accounts.models import ApiKey, Membership, User, Workspace
from billing.models import QuotaOverride
from billing.selectors import plan_for, quota_status
from config.admin import ReadOnlyAdmin
from operations.charts import stacked_bars
from operations.selectors import workspace_overview
from operations.services import (
    audit_record,
    operator_api_key_revoke,
    operator_membership_remove,
    operator_quota_override_delete,
    operator_quota_override_save,
    operator_workspace_suspend,
    operator_workspace_unsuspend,
)


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    ordering = ["email"]
    list_display = ["email", "name", "is_staff", "is_active", "date_joined"]
    search_fields = ["email", "name"]
    fieldsets = [
        (None, {"fields": ["email", "password", "name"]}),
        (
            _("Permissions"),
            {"fields": ["is_active", "is_staff", "is_superuser", "groups"]},
        ),
        (_("Dates"), {"fields": ["last_login", "date_joined"]}),
    ]
    add_fieldsets = [(None, {"classes": ["wide"], "fields": ["email", "password1", "password2"]})]

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # their jobs, keys and free allowance stay on record: deactivate instead


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


class QuotaOverrideInline(admin.TabularInline):
    model = QuotaOverride
    extra = 0
    fields = ["daily_images", "until", "reason", "created_by", "created_at"]
    readonly_fields = ["created_by", "created_at"]


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    """A workspace's page: members, keys (revoke), plan, usage, recent jobs, suspension.
    Every button calls an audited operator service."""

    list_display = ["name", "personal", "plan", "usage_today", "suspended_at", "created_at"]
    list_filter = ["personal", ("suspended_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "memberships__user__email"]
    readonly_fields = ["suspended_at", "created_at"]
    inlines = [MembershipInline, QuotaOverrideInline]
    actions = ["suspend", "unsuspend"]
    change_form_template = "admin/accounts/workspace/change_form.html"

    @admin.action(description=_("Suspend the selected workspaces (they cannot submit jobs)"))
    def suspend(self, request: HttpRequest, queryset: QuerySet[Workspace]) -> None:
        done = sum(operator_workspace_suspend(actor=request.user, workspace=w) for w in queryset)
        self.message_user(
            request,
            _("Suspended %(done)d workspace(s): their submissions stop now.") % {"done": done},
        )

    @admin.action(description=_("Lift the suspension of the selected workspaces"))
    def unsuspend(self, request: HttpRequest, queryset: QuerySet[Workspace]) -> None:
        done = sum(operator_workspace_unsuspend(actor=request.user, workspace=w) for w in queryset)
        self.message_user(
            request, _("Lifted the suspension of %(done)d workspace(s).") % {"done": done}
        )

    @admin.display(description=_("plan"))
    def plan(self, workspace: Workspace) -> str:
        return plan_for(workspace).name

    @admin.display(description=_("usage this window"))
    def usage_today(self, workspace: Workspace) -> str:
        quota = quota_status(workspace=workspace)
        return f"{quota.used} / {quota.limit}"

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # its jobs, ledger and billing stay on record: suspend it instead

    def get_urls(self) -> list[URLPattern]:
        def route(suffix: str, view: Any, name: str) -> URLPattern:
            wrapped = self.admin_site.admin_view(require_POST(view))
            return path(f"<uuid:object_id>/{suffix}", wrapped, name=f"accounts_workspace_{name}")

        return [
            route("suspend/", self.suspend_view, "suspend"),
            route("unsuspend/", self.unsuspend_view, "unsuspend"),
            route("keys/<uuid:key_id>/revoke/", self.revoke_key_view, "revoke_key"),
            *super().get_urls(),
        ]

    def _back(self, workspace: Workspace) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:accounts_workspace_change", args=[workspace.pk]))

    def _workspace(self, request: HttpRequest, object_id: object) -> Workspace:
        workspace = get_object_or_404(Workspace, pk=object_id)
        if not self.has_change_permission(request, workspace):
            raise PermissionDenied
        return workspace

    def suspend_view(self, request: HttpRequest, object_id: object) -> HttpResponse:
        workspace = self._workspace(request, object_id)
        if operator_workspace_suspend(actor=request.user, workspace=workspace):
            self.message_user(request, _("Suspended: its submissions stop now."))
        return self._back(workspace)

    def unsuspend_view(self, request: HttpRequest, object_id: object) -> HttpResponse:
        workspace = self._workspace(request, object_id)
        if operator_workspace_unsuspend(actor=request.user, workspace=workspace):
            self.message_user(request, _("The suspension is lifted."))
        return self._back(workspace)

    def revoke_key_view(
        self, request: HttpRequest, object_id: object, key_id: object
    ) -> HttpResponse:
        workspace = self._workspace(request, object_id)
        key = get_object_or_404(ApiKey, pk=key_id, workspace=workspace)
        if operator_api_key_revoke(actor=request.user, key=key):
            self.message_user(request, _("Key %(prefix)s… revoked.") % {"prefix": key.prefix})
        return self._back(workspace)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        workspace = self.get_object(request, object_id)
        if workspace is not None:
            overview = workspace_overview(workspace)
            first, last = overview.usage_days[0], overview.usage_days[-1]
            extra_context = {
                **(extra_context or {}),
                "overview": overview,
                "usage_chart": stacked_bars(
                    {_("images"): overview.usage_per_day},
                    label=_("Images used per day, last 30 days"),
                    start_label=f"{first:%d %b}",
                    end_label=f"{last:%d %b}",
                ),
            }
        return super().change_view(request, object_id, form_url, extra_context)

    def save_formset(
        self, request: HttpRequest, form: object, formset: object, change: bool
    ) -> None:
        for obj in formset.save(commit=False):  # type: ignore[attr-defined]
            if isinstance(obj, QuotaOverride):
                operator_quota_override_save(actor=request.user, override=obj)
            else:  # a membership added or its role changed
                obj.save()
                audit_record(
                    actor=request.user,
                    action="membership.save",
                    target=obj.workspace,
                    detail=f"{obj.user.email}: {obj.role}",
                )
        formset.save_m2m()  # type: ignore[attr-defined]
        for obj in formset.deleted_objects:  # type: ignore[attr-defined]
            if isinstance(obj, Membership):  # their keys go with them, audited
                operator_membership_remove(actor=request.user, membership=obj)
            elif isinstance(obj, QuotaOverride):
                operator_quota_override_delete(actor=request.user, override=obj)


@admin.register(ApiKey)
class ApiKeyAdmin(ReadOnlyAdmin):
    """Read-only: keys are made by their members and revoked here with the action."""

    list_display = [
        "prefix",
        "name",
        "workspace",
        "created_by",
        "last_used_at",
        "revoked_at",
        "awaiting_verification",
    ]
    search_fields = ["prefix", "name", "workspace__name"]
    # awaiting_verification ends when the address is verified (allauth's email addresses)
    readonly_fields = [
        "prefix",
        "hashed_secret",
        "last_used_at",
        "created_at",
        "awaiting_verification",
    ]
    actions = ["revoke"]

    @admin.action(description=_("Revoke selected keys"))
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        done = sum(operator_api_key_revoke(actor=request.user, key=key) for key in queryset)
        self.message_user(request, _("Revoked %(done)d key(s).") % {"done": done}, messages.SUCCESS)
