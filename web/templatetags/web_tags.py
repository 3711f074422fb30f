from __future__ import annotations

from datetime import datetime

from django import template

from config.durations import duration_text
from web.submit import seconds_until

register = template.Library()


@register.filter
def time_until(moment: datetime | None) -> str:
    """How long until `moment`, as a person says it: "5 h 12 min"."""
    return duration_text(seconds_until(moment)) if moment else ""


@register.filter
def dollars(cents: int) -> str:
    return f"${cents / 100:,.2f}" if cents % 100 else f"${cents // 100:,}"
