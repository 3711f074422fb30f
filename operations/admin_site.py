from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse

from operations.selectors import operator_dashboard


class AtelierAdminSite(admin.AdminSite):
    """The admin, with the operators' dashboard above the list of models."""

    site_header = "Atelier operations"
    site_title = "Atelier admin"
    index_title = "Dashboard"
    index_template = "admin/atelier_index.html"

    def index(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> TemplateResponse:
        return super().index(request, {**(extra_context or {}), "dashboard": operator_dashboard()})
