from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from generation.admission import operator_switches_update
from generation.models import Image, Job, OperatorSwitches, PolicyRefusal, PolicyRule


class ImageInline(admin.TabularInline):
    model = Image
    extra = 0
    readonly_fields = ["index", "file", "width", "height", "seed", "created_at"]


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "workspace", "kind", "status", "lane", "num_images", "created_at"]
    list_filter = ["status", "lane", "kind"]
    search_fields = ["id", "workspace__name", "prompt"]
    readonly_fields = ["created_at", "started_at", "finished_at", "heartbeat_at", "worker"]
    inlines = [ImageInline]


@admin.register(PolicyRule)
class PolicyRuleAdmin(admin.ModelAdmin):
    list_display = ["term", "reason", "active", "created_at"]
    list_filter = ["active"]
    search_fields = ["term", "reason"]


@admin.register(PolicyRefusal)
class PolicyRefusalAdmin(admin.ModelAdmin):
    """Refused prompts for review: operators mark them reviewed; nothing else changes."""

    list_display = ["created_at", "workspace", "user", "rule", "prompt", "reviewed"]
    list_filter = ["reviewed", "rule"]
    search_fields = ["prompt", "workspace__name", "user__email"]
    readonly_fields = ["created_at", "workspace", "user", "rule", "prompt"]
    actions = ["mark_reviewed"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Mark as reviewed")
    def mark_reviewed(self, request: HttpRequest, queryset: QuerySet[PolicyRefusal]) -> None:
        queryset.update(reviewed=True)


@admin.register(OperatorSwitches)
class OperatorSwitchesAdmin(admin.ModelAdmin):
    """The overload switches: saved through the service, in effect within seconds."""

    list_display = ["__str__", "free_tier_paused", "free_daily_images", "max_queued_jobs", "banner"]
    readonly_fields = ["updated_at", "updated_by"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not OperatorSwitches.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def save_model(
        self, request: HttpRequest, obj: OperatorSwitches, form: object, change: bool
    ) -> None:
        fields = {name: getattr(obj, name) for name in form.cleaned_data}  # type: ignore[attr-defined]
        operator_switches_update(user=request.user, **fields)
        obj.pk = 1
