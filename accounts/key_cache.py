"""A per-process memory of API keys verified in the last API_KEY_CACHE_SECONDS.

Every API request authenticates; without this its key, workspace and owner cost a query each
time. Revocation goes through accounts.services.api_keys_revoke, which forgets the key here
at once; other processes forget it when its entry expires.
"""

from __future__ import annotations

import copy
import threading
import time
from typing import TypeVar

from django.db.models import Model

from accounts.models import ApiKey

M = TypeVar("M", bound=Model)


class VerifiedKeys:
    """Keys this process verified in the last API_KEY_CACHE_SECONDS, by hashed secret.

    Every API request authenticates, and its key, workspace and owner would otherwise cost a
    query each time. Entries expire by the clock instead of being invalidated, so that a
    revocation, a suspension or a deactivation reaches every web process within that many
    seconds with no message between processes to lose.
    """

    MAX_ENTRIES = 10_000  # about 5 KB each: a bounded memory cost for a process

    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, ApiKey]] = {}
        self._lock = threading.Lock()

    def get(self, hashed: str) -> ApiKey | None:
        entry = self._entries.get(hashed)
        if entry is None or entry[0] <= time.monotonic():
            return None
        return entry[1]

    def remember(self, hashed: str, key: ApiKey, seconds: float) -> None:
        if seconds <= 0:
            return
        with self._lock:
            if len(self._entries) >= self.MAX_ENTRIES:
                now = time.monotonic()
                self._entries = {h: e for h, e in self._entries.items() if e[0] > now}
                if len(self._entries) >= self.MAX_ENTRIES:
                    self._entries.clear()
            self._entries[hashed] = (time.monotonic() + seconds, key)

    def forget(self, hashed: str) -> None:
        with self._lock:
            self._entries.pop(hashed, None)

    def forget_workspace(self, workspace_id: object) -> None:
        with self._lock:
            self._entries = {
                h: e for h, e in self._entries.items() if e[1].workspace_id != workspace_id
            }

    @staticmethod
    def copy_for_request(key: ApiKey) -> ApiKey:
        """A copy of a remembered key (and its workspace and owner) that one request may change."""
        copied = _model_copy(key)
        copied.workspace = _model_copy(key.workspace)
        copied.created_by = _model_copy(key.created_by)
        return copied


def _model_copy(instance: M) -> M:
    """What copy.copy makes of a model instance (its fields, and its own state with its cache
    of related objects), without the round through pickling's protocol that copy.copy takes
    (Model.__reduce__ and __getstate__): a fifth of an API request's authentication."""
    clone = instance.__class__.__new__(instance.__class__)
    clone.__dict__ = instance.__dict__.copy()
    clone._state = copy.copy(instance._state)
    clone._state.fields_cache = instance._state.fields_cache.copy()
    return clone


verified_keys = VerifiedKeys()
