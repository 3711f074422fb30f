from __future__ import annotations

from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps
from django.utils.translation import gettext_lazy as _


class OperationsConfig(AppConfig):
    default = True
    default_auto_field = "django.db.models.BigAutoField"
    name = "operations"
    verbose_name = _("Operators' audit log")


class OperationsAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin, with the operators' dashboard on its index page."""

    default = False  # named in INSTALLED_APPS in place of django.contrib.admin
    default_site = "operations.admin_site.AtelierAdminSite"
