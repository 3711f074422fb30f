"""The web process's front door (config/front_door.py), driven as an ASGI server drives it.

A small WSGI app stands in for Django's handler, so each test controls what a view does.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterable
from typing import Any

from config.front_door import BODY_PREREAD_BYTES, FrontDoor


def scope(path: str = "/api/v1/thing", method: str = "POST", length: int = 0) -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"a=1",
        "root_path": "", "client": ("127.0.0.1", 40000), "server": ("localhost", 80),
        "headers": [(b"host", b"localhost"), (b"content-length", str(length).encode())],
    }  # fmt: skip


async def call(app: FrontDoor, request_scope: dict[str, Any], chunks: list[bytes]) -> dict:
    """One request; the body arrives in `chunks`. Returns status, headers and body."""
    incoming = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks or [b""])
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if incoming:
            return incoming.pop(0)
        await asyncio.sleep(3600)  # a client that stays connected
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(request_scope, receive, send)
    start = sent[0]
    return {
        "status": start["status"],
        "headers": dict(start["headers"]),
        "body": b"".join(m.get("body", b"") for m in sent[1:]),
        "more_body_flags": [m.get("more_body", False) for m in sent[1:]],
    }


def front_door(wsgi_app: Callable[..., Iterable[bytes]], **options: Any) -> FrontDoor:
    async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"async view"})

    defaults = {"threads": 2, "max_queued": 0, "max_waiting": 1}
    return FrontDoor(
        wsgi_app=wsgi_app, asgi_app=asgi_app, is_async_path=lambda p: p.startswith("/v1/"),
        **{**defaults, **options},
    )  # fmt: skip


def echo(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    body = environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"] or 0))
    start_response("201 Created", [("Content-Type", "application/json")])
    return [
        json.dumps(
            {
                "method": environ["REQUEST_METHOD"],
                "path": environ["PATH_INFO"],
                "query": environ["QUERY_STRING"],
                "host": environ["HTTP_HOST"],
                "length": len(body),
                "sha": hash(body),
                "thread": threading.current_thread().name,
            }
        ).encode()
    ]


def test_a_large_body_in_many_chunks_reaches_the_view_whole() -> None:
    body = bytes(range(256)) * (3 * BODY_PREREAD_BYTES // 256)
    chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)]
    answer = asyncio.run(call(front_door(echo), scope(length=len(body)), chunks))
    seen = json.loads(answer["body"])
    assert answer["status"] == 201
    assert (seen["length"], seen["sha"]) == (len(body), hash(body))
    assert (seen["method"], seen["path"], seen["query"], seen["host"]) == (
        "POST", "/api/v1/thing", "a=1", "localhost",
    )  # fmt: skip
    assert seen["thread"].startswith("web")  # on the pool, not the event loop


def test_a_streamed_response_is_sent_chunk_by_chunk() -> None:
    class Streamed:
        streaming = True

        def __iter__(self) -> Any:
            return iter([b"one", b"two", b"three"])

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Streamed()

    answer = asyncio.run(call(front_door(app), scope(method="GET"), []))
    assert (answer["status"], answer["body"]) == (200, b"onetwothree")
    assert answer["more_body_flags"] == [True, True, True, False]


def test_async_views_run_on_the_loop() -> None:
    answer = asyncio.run(call(front_door(echo), scope("/v1/images/generations"), []))
    assert answer["body"] == b"async view"


def test_requests_past_the_bound_are_answered_503_at_once_in_the_error_shape() -> None:
    release = threading.Event()

    def slow(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        release.wait(60)
        start_response("200 OK", [])
        return [b"done"]

    app = front_door(slow, threads=2, max_queued=1)

    async def scenario() -> list[dict]:
        busy = [asyncio.create_task(call(app, scope(), [])) for _ in range(3)]
        while app.sync_in_flight < 3:
            await asyncio.sleep(0.01)
        shed = [await call(app, scope(), []) for _ in range(2)]  # answered while 3 are busy
        release.set()
        return shed + list(await asyncio.gather(*busy))

    answers = asyncio.run(scenario())
    assert [a["status"] for a in answers] == [503, 503, 200, 200, 200]
    for shed in answers[:2]:
        assert shed["headers"][b"retry-after"] == b"2"
        error = json.loads(shed["body"])["error"]
        assert (error["code"], error["type"]) == ("overloaded", "overloaded_error")
    assert app.shed == 2


def test_a_request_that_waited_too_long_for_a_thread_is_answered_503_instead_of_run() -> None:
    release = threading.Event()
    ran: list[str] = []

    def app_view(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        ran.append(environ["PATH_INFO"])
        if environ["PATH_INFO"] == "/first":
            release.wait(60)
        start_response("200 OK", [])
        return [b"done"]

    app = front_door(app_view, threads=1, max_queued=5, max_queue_seconds=0.05)

    async def scenario() -> list[dict]:
        first = asyncio.create_task(call(app, scope("/first"), []))
        while not ran:
            await asyncio.sleep(0.01)
        second = asyncio.create_task(call(app, scope("/second"), []))
        await asyncio.sleep(0.2)  # the second waits for the only thread past its limit
        release.set()
        return [await first, await second]

    first, second = asyncio.run(scenario())
    assert (first["status"], second["status"]) == (200, 503)
    assert ran == ["/first"]  # the late one never reached the view
