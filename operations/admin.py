from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from operations.models import AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """Read-only: the record of what operators did."""

    list_display = ["created_at", "actor", "action", "target_type", "target_repr", "detail"]
    list_filter = ["action", "target_type"]
    search_fields = ["target_id", "target_repr", "actor__email", "detail"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
