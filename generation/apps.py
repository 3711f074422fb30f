from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class GenerationConfig(AppConfig):
    verbose_name = _("Jobs and content policy")
    name = "generation"
    default_auto_field = "django.db.models.BigAutoField"
