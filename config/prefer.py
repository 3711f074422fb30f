"""`Prefer: wait` (RFC 7240) on the submit endpoints: hold the request until the job finishes.

A request that asks to wait is served by the async views of `settings.PREFER_WAIT_URLCONF`
(generation/wait_urls.py), which wait on the event loop; every other request goes on to the
usual, synchronous views. The front door (config/front_door.py) routes by the same rule, so
the common submission without the header never leaves the thread pool.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.decorators import sync_and_async_middleware


def prefer_wait_seconds(header: str | None, maximum: int) -> int | None:
    """Seconds a `Prefer` header asks to wait, at most `maximum`; None if it asks for none.

    `wait` alone means the longest wait allowed; `wait=N` N seconds (RFC 7240 section 4.3).
    """
    if not header:
        return None
    for preference in header.split(","):
        name, _, value = preference.split(";", 1)[0].strip().partition("=")
        if name.strip().lower() != "wait":
            continue
        value = value.strip().strip('"')
        if not value:
            return maximum
        try:
            seconds = int(value)
        except ValueError:
            return None
        return min(seconds, maximum) if seconds > 0 else None
    return None


def asks_to_wait(method: str, header: str | None) -> bool:
    return method == "POST" and prefer_wait_seconds(header, 1) is not None


@sync_and_async_middleware
def prefer_wait_middleware(get_response: Callable[[HttpRequest], Any]) -> Any:
    """Resolve a POST that says `Prefer: wait` against the waiting views' URLconf."""

    def choose(request: HttpRequest) -> None:
        if asks_to_wait(request.method or "", request.headers.get("Prefer")):
            request.urlconf = settings.PREFER_WAIT_URLCONF

    if iscoroutinefunction(get_response):

        async def middleware(request: HttpRequest) -> HttpResponse:
            choose(request)
            return await get_response(request)

        return middleware

    def sync_middleware(request: HttpRequest) -> HttpResponse:
        choose(request)
        return get_response(request)

    return sync_middleware
