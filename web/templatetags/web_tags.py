from __future__ import annotations

from datetime import datetime

from django import template
from django.utils.formats import number_format
from django.utils.translation import gettext as _

from config.durations import duration_text
from web.submit import seconds_until

register = template.Library()


@register.filter
def time_until(moment: datetime | None) -> str:
    """How long until `moment`, as a person says it: "5 h 12 min"."""
    return duration_text(seconds_until(moment)) if moment else ""


@register.filter
def dollars(cents: int) -> str:
    """A price in the active language's number format: "$1,234.50", "1 234,50 $"."""
    decimals = 2 if cents % 100 else 0
    amount = number_format(cents / 100, decimal_pos=decimals, use_l10n=True, force_grouping=True)
    return _("$%(amount)s") % {"amount": amount}
