"""Domain errors: what a service refuses or fails at, in terms that know nothing of HTTP.

A domain error has a stable machine-readable `code`, a `message` for people and typed facts
(`limit`, `reset_at`, `retry_after`, `suggestion`...). The API layer maps codes to HTTP
statuses and headers in one table (config/api_errors.py); the web pages render the facts as
sentences. Nobody parses a header back into a fact.

This module sits below every app (apps import it; it imports none of them).
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A refusal with a stable code. Subclasses set `code` and build the message."""

    code: str = "invalid_request"

    def __init__(
        self, message: str, *, code: str | None = None, param: str | None = None, **facts: Any
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.param = param  # the request field at fault, when one is
        self.facts = facts

    @property
    def retry_after(self) -> int | None:
        """Seconds after which the same request may succeed; None when it never will."""
        value = self.facts.get("retry_after")
        return int(value) if value is not None else None

    def __str__(self) -> str:
        return self.message


class ServiceUnavailable(DomainError):
    """A part the platform depends on (the database, the broker) is out of reach for now."""

    code = "service_unavailable"

    def __init__(self, message: str, *, retry_after: int = 5) -> None:
        super().__init__(message, retry_after=retry_after)
