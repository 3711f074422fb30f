"""Request bodies are bounded on every URL before anything reads or stores them
(config/front_door.py): a declared length past the bound is refused unread, a streamed body
is cut off at the bound."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tests.config.test_front_door import call, echo, front_door, scope

LIMIT = 1_000_000


def chunked_scope(path: str = "/api/v1/thing") -> dict[str, Any]:
    request = scope(path=path)
    request["headers"] = [(b"host", b"localhost"), (b"transfer-encoding", b"chunked")]
    return request


def test_a_declared_length_past_the_bound_is_refused_without_reading_the_body() -> None:
    reads: list[object] = []

    async def never_read() -> dict[str, Any]:
        reads.append("read")
        raise AssertionError("the body was read")

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    app = front_door(echo, max_body_bytes=LIMIT)
    for path in ("/api/v1/edits", "/v1/images/edits", "/accounts/login/", "/no/such/url"):
        sent.clear()
        asyncio.run(app(scope(path=path, length=200_000_000), never_read, send))
        assert sent[0]["status"] == 413
        error = json.loads(sent[1]["body"])["error"]
        assert error["code"] == "request_too_large"
    assert reads == []


def test_a_streamed_body_is_cut_off_at_the_bound() -> None:
    chunk = b"x" * 65536
    chunks = [chunk] * 3200  # 200 MB if it were all read
    answer = asyncio.run(call(front_door(echo, max_body_bytes=LIMIT), chunked_scope(), chunks))
    assert answer["status"] == 413
    assert json.loads(answer["body"])["error"]["code"] == "request_too_large"


def test_a_streamed_body_within_the_bound_reaches_the_view_whole() -> None:
    def measure(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"length": len(body)}).encode()]

    chunks = [b"y" * 1000] * 50
    answer = asyncio.run(call(front_door(measure, max_body_bytes=LIMIT), chunked_scope(), chunks))
    assert answer["status"] == 200
    assert json.loads(answer["body"]) == {"length": 50_000}
