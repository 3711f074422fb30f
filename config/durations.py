"""Durations as people and headers read them: one home for the three formats we use.

The first two are in the active language (French writes "5 h 12 min" too); the third is a
header's, the same in every language."""

from __future__ import annotations

from django.utils.translation import gettext as _


def duration_text(seconds: int) -> str:
    """A long wait as a person reads it: "5 h 12 min", "3 min"."""
    hours, rest = divmod(max(seconds, 0), 3600)
    minutes = rest // 60
    if hours:
        return _("%(hours)d h %(minutes)d min") % {"hours": hours, "minutes": minutes}
    return _("%(minutes)d min") % {"minutes": max(minutes, 1)}


def wait_text(seconds: int) -> str:
    """A short wait in words: "45 s", "3 min", "5 h 12 min"."""
    return _("%(seconds)d s") % {"seconds": seconds} if seconds < 60 else duration_text(seconds)


def compact_duration(seconds: int) -> str:
    """A duration in Go's format, as OpenAI's rate-limit headers write it: "5h12m0s"."""
    hours, rest = divmod(max(seconds, 0), 3600)
    minutes, secs = divmod(rest, 60)
    return (f"{hours}h" if hours else "") + (f"{minutes}m" if hours or minutes else "") + f"{secs}s"
