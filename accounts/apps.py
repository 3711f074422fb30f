from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AccountsConfig(AppConfig):
    verbose_name = _("People, workspaces and API keys")
    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"
