from __future__ import annotations

from django.contrib import admin

from config.admin import ReadOnlyAdmin
from operations.models import AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    """Read-only: the record of what operators did."""

    list_display = ["created_at", "actor", "action", "target_type", "target_repr", "detail"]
    list_filter = ["action", "target_type"]
    search_fields = ["target_id", "target_repr", "actor__email", "detail"]
    date_hierarchy = "created_at"
