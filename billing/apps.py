from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class BillingConfig(AppConfig):
    verbose_name = _("Plans, quotas and billing")
    name = "billing"
    default_auto_field = "django.db.models.BigAutoField"
