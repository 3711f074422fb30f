"""gunicorn's uvicorn worker with an HTTP protocol that keeps connections balanced across the
web processes (config/web_balance.py says why and how)."""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn_worker import UvicornWorker

from config import web_balance


class BalancingProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, counting its connection in the shared table and closing
    it after the response to a request that arrives while this process is over its share."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if web_balance.table is not None:
            web_balance.table.opened()

    def connection_lost(self, exc: Exception | None) -> None:
        if web_balance.table is not None:
            web_balance.table.closed()
        super().connection_lost(exc)

    def on_headers_complete(self) -> None:
        before = self.cycle
        super().on_headers_complete()
        table = web_balance.table
        if self.cycle is not before and self.cycle.keep_alive and table and table.should_close():
            # Imported here, not above: gunicorn's master imports this module for the worker
            # class, and must not make metric files before its on_starting empties the folder.
            from config.metrics import WEB_CONNECTIONS_REBALANCED

            self.cycle.keep_alive = False  # uvicorn adds `connection: close` to the response
            WEB_CONNECTIONS_REBALANCED.inc()


class Worker(UvicornWorker):
    CONFIG_KWARGS: dict[str, Any] = {**UvicornWorker.CONFIG_KWARGS, "http": BalancingProtocol}
