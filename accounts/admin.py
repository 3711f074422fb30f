from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import ApiKey, Membership, User, Workspace
from billing.models import QuotaOverride
from billing.selectors import plan_for, quota_status
from operations.services import (
    audit_record,
    operator_api_key_revoke,
    operator_membership_remove,
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
            gettext_lazy("Permissions"),
            {"fields": ["is_active", "is_staff", "is_superuser", "groups"]},
        ),
        (gettext_lazy("Dates"), {"fields": ["last_login", "date_joined"]}),
    ]
    add_fieldsets = [(None, {"classes": ["wide"], "fields": ["email", "password1", "password2"]})]


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
    list_display = ["name", "personal", "plan", "usage_today", "suspended_at", "created_at"]
    list_filter = ["personal", ("suspended_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "memberships__user__email"]
    readonly_fields = ["suspended_at"]
    inlines = [MembershipInline, QuotaOverrideInline]
    actions = ["suspend", "unsuspend"]

    @admin.action(
        description=gettext_lazy("Suspend the selected workspaces (they cannot submit jobs)")
    )
    def suspend(self, request: HttpRequest, queryset: QuerySet[Workspace]) -> None:
        done = sum(operator_workspace_suspend(actor=request.user, workspace=w) for w in queryset)
        self.message_user(
            request,
            _("Suspended %(done)d workspace(s): their submissions stop now.") % {"done": done},
        )

    @admin.action(description=gettext_lazy("Lift the suspension of the selected workspaces"))
    def unsuspend(self, request: HttpRequest, queryset: QuerySet[Workspace]) -> None:
        done = sum(operator_workspace_unsuspend(actor=request.user, workspace=w) for w in queryset)
        self.message_user(
            request, _("Lifted the suspension of %(done)d workspace(s).") % {"done": done}
        )

    @admin.display(description=gettext_lazy("plan"))
    def plan(self, workspace: Workspace) -> str:
        return plan_for(workspace).name

    @admin.display(description=gettext_lazy("usage this window"))
    def usage_today(self, workspace: Workspace) -> str:
        quota = quota_status(workspace=workspace)
        return f"{quota.used} / {quota.limit}"

    def save_formset(
        self, request: HttpRequest, form: object, formset: object, change: bool
    ) -> None:
        for override in formset.save(commit=False):  # type: ignore[attr-defined]
            if isinstance(override, QuotaOverride) and override.created_by_id is None:
                override.created_by = request.user
            override.save()
            if isinstance(override, QuotaOverride):
                audit_record(
                    actor=request.user,
                    action="workspace.quota_override",
                    target=override.workspace,
                    detail=f"{override.daily_images} images until {override.until or 'removed'}",
                )
        formset.save_m2m()  # type: ignore[attr-defined]
        for obj in formset.deleted_objects:  # type: ignore[attr-defined]
            if isinstance(obj, Membership):  # their keys go with them, audited
                operator_membership_remove(actor=request.user, membership=obj)
            else:
                obj.delete()


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
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

    @admin.action(description=gettext_lazy("Revoke selected keys"))
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        done = sum(operator_api_key_revoke(actor=request.user, key=key) for key in queryset)
        self.message_user(request, _("Revoked %(done)d key(s).") % {"done": done}, messages.SUCCESS)
