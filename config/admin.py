"""Admin building blocks shared by the apps' admin modules."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.paginator import Paginator
from django.http import HttpRequest
from django.utils.functional import cached_property


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records that operators read but never write by hand (jobs, the ledger, the audit log).
    Changes to them happen only through admin actions that call an audited service."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    """An inline that shows rows and never adds, changes or deletes them."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class BoundedCountPaginator(Paginator):
    """Counts at most COUNT_CAP rows (a COUNT over a LIMITed subquery), so that a changelist
    over millions of rows costs the same as one over a thousand. Past the cap the last
    pages are not offered; filters and search narrow the list instead."""

    COUNT_CAP = 10_000

    @cached_property
    def count(self) -> int:
        queryset: Any = self.object_list
        return int(queryset.order_by().values("pk")[: self.COUNT_CAP].count())
