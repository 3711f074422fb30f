"""The operators' switches for a day of overload: pause the free tier, lower the free
quota, cap the queue, show a banner. One row, read at most every two seconds per process."""

from __future__ import annotations

import time
from typing import Any

from accounts.models import User
from billing.models import OperatorSwitches

_SWITCHES_TTL = 2.0  # seconds a process keeps the operator switches
_switches_cache: tuple[float, OperatorSwitches] | None = None


def operator_switches() -> OperatorSwitches:
    """The switches, read at most every two seconds per process."""
    global _switches_cache
    now = time.monotonic()
    if _switches_cache is None or now - _switches_cache[0] > _SWITCHES_TTL:
        switches = OperatorSwitches.objects.filter(pk=1).first() or OperatorSwitches(pk=1)
        _switches_cache = (now, switches)
    return _switches_cache[1]


def operator_switches_update(*, user: User | None = None, **fields: Any) -> OperatorSwitches:
    """Change the switches; this process sees them at once, others within two seconds."""
    global _switches_cache
    switches, _ = OperatorSwitches.objects.update_or_create(
        pk=1, defaults={**fields, "updated_by": user}
    )
    _switches_cache = None
    return switches
