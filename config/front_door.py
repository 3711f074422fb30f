"""The web process's ASGI application: each request goes where it runs best, or is shed.

Django under ASGI runs every synchronous view in a thread made for that request alone, so a
request pays for a new thread and, because database connections belong to threads, for a
new database connection too: on this project's 2-core machine a trivial view served 6.5x
fewer requests than under gthread WSGI. Yet the OpenAI-compatible views wait up to a minute
for their images, and under WSGI each would hold a thread for that long.

So one event loop per process (uvicorn) routes by view:

- async views (the waiting OpenAI-compatible endpoints) run on the loop through Django's
  ASGI handler, holding no thread while they wait (generation/waiting.py);
- every other view runs through Django's WSGI handler on a fixed pool of threads, as
  gthread WSGI would run it: threads and their database connections are reused.

Overload is answered, never dropped: past `max_queued` synchronous requests waiting for a
thread (or `max_waiting` async ones), a request is answered at once with 503 `overloaded`,
`Retry-After` and the API's error shape, before Django or the database see it. Bodies are
bounded the same way (413 before anything reads them).

Over 300 lines: it is a small ASGI server core (routing, the WSGI bridge, shedding, bounded
bodies) whose parts share the loop's single-threaded bookkeeping.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.urls import Resolver404, get_resolver

from config.logs import request_id_from, request_id_var
from config.metrics import HTTP_SHED
from config.prefer import asks_to_wait

logger = logging.getLogger(__name__)

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# Bodies up to this size are read on the loop before the view starts, saving the thread a
# round trip to the loop for them; larger ones (uploads) are streamed to the thread.
BODY_PREREAD_BYTES = 256 * 1024
OVERLOAD_RETRY_AFTER = 2  # seconds: long enough for a burst to drain, short for a person


def overload_response_body() -> bytes:
    from config.api_errors import error_body

    body = error_body(
        code="overloaded",
        message="The server is busy. Please retry in a few seconds.",
        status_code=503,
    )
    return json.dumps(body).encode()


def overloaded_start(body: bytes) -> Message:
    HTTP_SHED.labels("overloaded").inc()
    logger.info("Shed: 503 overloaded", extra={"code": "overloaded", "status": 503})
    return {
        "type": "http.response.start",
        "status": 503,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(OVERLOAD_RETRY_AFTER).encode()),
            (b"x-request-id", request_id_var.get().encode()),
        ],
    }


async def send_overloaded(send: Send) -> None:
    body = overload_response_body()
    await send(overloaded_start(body))
    await send({"type": "http.response.body", "body": body})


async def send_too_large(send: Send, limit: int) -> None:
    from config.api_errors import error_body

    body = json.dumps(
        error_body(
            code="request_too_large",
            message=f"The request body is larger than {limit} bytes.",
            status_code=413,
        )
    ).encode()
    HTTP_SHED.labels("too_large").inc()
    logger.info("Refused: 413 request_too_large", extra={"code": "request_too_large"})
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),  # the rest of the body is not read
        (b"x-request-id", request_id_var.get().encode()),
    ]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def with_request_id(scope: Scope) -> Scope:
    """The request's id (an acceptable incoming X-Request-ID, else a new one) in the scope's
    headers, where Django's RequestMiddleware reads it, and in this task's context, so that
    the front door's own lines and answers carry it too."""
    headers = [(name, value) for name, value in scope["headers"] if name != b"x-request-id"]
    incoming = next(
        (value for name, value in scope["headers"] if name == b"x-request-id"), b""
    ).decode("latin1")
    request_id = request_id_from(incoming)
    request_id_var.set(request_id)
    return {**scope, "headers": [*headers, (b"x-request-id", request_id.encode())]}


def declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class _TooLarge(Exception):
    pass


async def read_bounded(receive: Receive, limit: int, into: bytearray) -> bool:
    """Read the rest of a body into `into`, at most `limit` bytes in all (raising _TooLarge
    past it, without keeping the excess). False when the client left."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return False
        into.extend(message.get("body", b""))
        if len(into) > limit:
            raise _TooLarge()
        if not message.get("more_body", False):
            return True


def replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands `body` over as one message, then passes on (disconnects)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


class _Body:
    """wsgi.input: the pre-read body, then whatever the client still sends (from the loop)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, receive: Receive, head: bytes, more: bool):
        self.loop = loop
        self.receive = receive
        self.buffer = bytearray(head)
        self.more = more

    def _fill(self) -> None:
        message = asyncio.run_coroutine_threadsafe(self.receive(), self.loop).result()
        if message["type"] == "http.disconnect":
            self.more = False
            return
        self.buffer.extend(message.get("body", b""))
        self.more = message.get("more_body", False)

    def read(self, size: int = -1) -> bytes:
        while self.more and (size < 0 or len(self.buffer) < size):
            self._fill()
        if size < 0 or size >= len(self.buffer):
            data = bytes(self.buffer)
            self.buffer.clear()
        else:
            data = bytes(self.buffer[:size])
            del self.buffer[:size]
        return data

    def readline(self, limit: int = -1) -> bytes:
        while True:
            end = self.buffer.find(b"\n")
            if end >= 0 or not self.more or (0 <= limit <= len(self.buffer)):
                break
            self._fill()
        cut = len(self.buffer) if end < 0 else end + 1
        if limit >= 0:
            cut = min(cut, limit)
        data = bytes(self.buffer[:cut])
        del self.buffer[:cut]
        return data

    def readlines(self, hint: int = -1) -> list[bytes]:
        return list(iter(self.readline, b""))

    def __iter__(self) -> Any:
        return iter(self.readline, b"")


def wsgi_environ(scope: Scope, body: _Body) -> dict[str, Any]:
    server = scope.get("server") or ("localhost", 80)
    client = scope.get("client") or ("", 0)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": scope.get("root_path", "").encode("utf8").decode("latin1"),
        "PATH_INFO": scope["path"].encode("utf8").decode("latin1"),
        "QUERY_STRING": scope["query_string"].decode("latin1"),
        "SERVER_NAME": server[0],
        "SERVER_PORT": str(server[1]),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "REMOTE_ADDR": client[0],
        "REMOTE_PORT": str(client[1]),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": body,
        "wsgi.errors": _LogStream(),
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin1").upper().replace("-", "_")
        value = raw_value.decode("latin1")
        key = name if name == "CONTENT_LENGTH" or name == "CONTENT_TYPE" else f"HTTP_{name}"
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    return environ


class _LogStream:
    def write(self, text: str) -> None:
        logger.error(text.rstrip())

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        return None


class FrontDoor:
    """Route each HTTP request to Django's WSGI handler on a thread pool or its ASGI handler."""

    def __init__(
        self,
        *,
        wsgi_app: WsgiApp,
        asgi_app: AsgiApp,
        threads: int,
        max_queued: int,
        max_waiting: int,
        max_queue_seconds: float = 10.0,
        max_body_bytes: int = 11_000_000,
        is_async_path: Callable[[str], bool] | None = None,
        is_wait_path: Callable[[str], bool] | None = None,
    ) -> None:
        self.wsgi_app = wsgi_app
        self.asgi_app = asgi_app
        self.threads = threads
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="web")
        self.max_sync = threads + max_queued
        self.max_waiting = max_waiting
        self.max_queue_seconds = max_queue_seconds
        self.max_body_bytes = max_body_bytes
        self.is_async_path = is_async_path or async_view_path
        self.is_wait_path = is_wait_path or wait_view_path
        self.sync_in_flight = 0
        self.async_in_flight = 0
        self.shed = 0  # requests answered 503 here since start (for tests and logs)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            raise ValueError(f"unsupported ASGI scope type {scope['type']!r}")
        scope = with_request_id(scope)
        # Bodies are bounded on every URL before Django or a view reads (or spools) them: a
        # declared length past the bound is refused unread; a streamed body without one is
        # read here, up to the bound, before it goes on.
        length = declared_length(scope)
        if length is not None and length > self.max_body_bytes:
            await send_too_large(send, self.max_body_bytes)
            return
        if length is None and scope["method"] not in ("GET", "HEAD", "OPTIONS"):
            body = bytearray()
            try:
                if not await read_bounded(receive, self.max_body_bytes, body):
                    return  # the client left: nobody to answer
            except _TooLarge:
                await send_too_large(send, self.max_body_bytes)
                return
            receive = replay(bytes(body), receive)
        if self._is_async(scope):
            if self.async_in_flight >= self.max_waiting:
                self.shed += 1
                await send_overloaded(send)
                return
            self.async_in_flight += 1
            try:
                await self.asgi_app(scope, receive, send)
            finally:
                self.async_in_flight -= 1
            return
        # The loop is single-threaded: this check and the increment cannot interleave.
        if self.sync_in_flight >= self.max_sync:
            self.shed += 1
            await send_overloaded(send)
            return
        self.sync_in_flight += 1
        try:
            await self._run_sync(scope, receive, send)
        finally:
            self.sync_in_flight -= 1

    def _is_async(self, scope: Scope) -> bool:
        if self.is_async_path(scope["path"]):
            return True
        # A submission that says `Prefer: wait` waits on the loop (config/prefer.py).
        if scope["method"] != "POST":
            return False
        prefer = next((v for k, v in scope["headers"] if k.lower() == b"prefer"), None)
        return (
            prefer is not None
            and asks_to_wait("POST", prefer.decode("latin1"))
            and self.is_wait_path(scope["path"])
        )

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.executor.shutdown(wait=False)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _run_sync(self, scope: Scope, receive: Receive, send: Send) -> None:
        loop = asyncio.get_running_loop()
        head, more = bytearray(), True
        while more and len(head) <= BODY_PREREAD_BYTES:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left before sending its request: nobody to answer
            head.extend(message.get("body", b""))
            more = message.get("more_body", False)
        environ = wsgi_environ(scope, _Body(loop, receive, bytes(head), more))
        context = contextvars.copy_context()
        call = functools.partial(
            context.run, self._respond_in_thread, loop, environ, send, time.monotonic()
        )
        started, chunks = await loop.run_in_executor(self.executor, call)
        # The usual response (not streamed) was rendered in the thread; send it from here.
        if started is not None:
            await send(started)
        await send({"type": "http.response.body", "body": b"".join(chunks)})

    def _respond_in_thread(
        self,
        loop: asyncio.AbstractEventLoop,
        environ: dict[str, Any],
        send: Send,
        queued_at: float,
    ) -> tuple[Message | None, list[bytes]]:
        """Call the WSGI app. Usual responses come back whole; streamed ones are sent here."""
        if time.monotonic() - queued_at > self.max_queue_seconds:
            # Its turn came too late (slow requests ahead): answer now instead of adding to
            # the backlog, so that every request is answered within a bounded time.
            self.shed += 1
            body = overload_response_body()
            return overloaded_start(body), [body]
        started: Message = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None):
            started.update(
                type="http.response.start",
                status=int(status.split(" ", 1)[0]),
                headers=[(k.lower().encode("latin1"), v.encode("latin1")) for k, v in headers],
            )
            return lambda data: None  # the legacy write() callable: Django never uses it

        result = self.wsgi_app(environ, start_response)
        try:
            if getattr(result, "streaming", False) or not isinstance(result, Iterable):
                return self._stream(loop, started, result, send)
            return started, [chunk for chunk in result if chunk]
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()

    def _stream(
        self, loop: asyncio.AbstractEventLoop, started: Message, result: Any, send: Send
    ) -> tuple[None, list[bytes]]:
        # A streamed response (a file, an event stream) goes out chunk by chunk from here,
        # each one handed to the loop, so that a large file is never held whole in memory.
        def deliver(message: Message) -> None:
            asyncio.run_coroutine_threadsafe(send(message), loop).result()

        deliver(started)
        for chunk in result:
            if chunk:
                deliver({"type": "http.response.body", "body": chunk, "more_body": True})
        return None, []


def async_view_path(path: str) -> bool:
    """Whether `path` resolves to a coroutine view (those run on the event loop)."""
    return _async_view_path(path)


def wait_view_path(path: str) -> bool:
    """Whether a `Prefer: wait` POST to `path` is served by a coroutine view."""
    from django.conf import settings

    return _async_view_path(path, settings.PREFER_WAIT_URLCONF)


@functools.lru_cache(maxsize=4096)
def _async_view_path(path: str, urlconf: str | None = None) -> bool:
    try:
        match = get_resolver(urlconf).resolve(path)
    except Resolver404:
        return False
    func = match.func
    return bool(
        getattr(func, "view_is_async", False)
        or getattr(getattr(func, "view_class", None), "view_is_async", False)
        or asyncio.iscoroutinefunction(func)
    )
