"""A studio card that follows its job's stream keeps the reader's language: the card sent when
the job changes, rendered while the stream is open (after the request's middleware ran), is
French for a French browser. In-process, through the web process's front door."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from django.test import Client

from generation.models import Job
from generation.services import job_cancel
from tests.conftest import make_person, small_job
from tests.web.test_pages_in_french import assert_french

pytestmark = pytest.mark.django_db(transaction=True)


async def card_stream(app: Any, path: str, cookie: str, cards: asyncio.Queue[Any]) -> str:
    """GET `path` through the ASGI app in French; each `card` event's HTML goes to `cards`."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 40000), "server": ("localhost", 80),
        "headers": [
            (b"host", b"localhost"), (b"cookie", cookie.encode()),
            (b"accept-language", b"fr-FR,fr;q=0.9,en;q=0.5"),
        ],
    }  # fmt: skip
    done = asyncio.Event()
    body = ""
    sent = 0
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal body, sent
        if message["type"] != "http.response.body":
            return
        body += message.get("body", b"").decode()
        blocks = body.split("\n\n")
        for block in blocks[sent : len(blocks) - 1]:
            lines = block.splitlines()
            if lines and lines[0] == "event: card":
                await cards.put("\n".join(line.removeprefix("data: ") for line in lines[1:]))
        sent = len(blocks) - 1
        if not message.get("more_body"):
            done.set()
            await cards.put(None)

    await app(scope, receive, send)
    return body


def cancel(job_id: str) -> None:
    try:
        job_cancel(job=Job.objects.get(pk=job_id))
    finally:
        connection.close()


def test_a_live_card_rendered_after_a_change_reads_in_french() -> None:
    from config.asgi import application

    # A paid plan: its job goes to the priority lane, which the suite's shared worker (started
    # by earlier end-to-end tests) does not serve, so the job stays queued until cancelled.
    alice = make_person("alice@example.com", plan="pro")
    job_id = alice.client().post("/api/v1/generations", small_job(), format="json").json()["id"]
    browser = Client()
    browser.force_login(alice.user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={browser.cookies[settings.SESSION_COOKIE_NAME].value}"

    async def scenario() -> tuple[list[str], str]:
        cards: asyncio.Queue[Any] = asyncio.Queue()
        path = f"/jobs/{job_id}/events/"
        stream = asyncio.create_task(card_stream(application, path, cookie, cards))
        seen = [await asyncio.wait_for(cards.get(), 30)]  # the card as it is: queued
        await sync_to_async(cancel)(job_id)
        while (card := await asyncio.wait_for(cards.get(), 30)) is not None:
            seen.append(card)
        return seen, await stream

    seen, body = asyncio.run(scenario())
    assert 'data-status="queued"' in seen[0] and "En attente" in seen[0]
    assert 'data-status="cancelled"' in seen[-1] and "Annulée" in seen[-1]
    for card in seen:
        assert_french(f"/jobs/{job_id}/events/", card)
    assert body.endswith("event: done\ndata: done\n\n")
