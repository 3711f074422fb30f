"""/readyz on the web server as shipped: it fails with the database out of reach and with
Redis out of reach, says which, and recovers when each is back; /healthz stays 200."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
import requests
from django.conf import settings
from django.db import connection

from tests.e2e.proxy import Relay
from tests.e2e.web_server import web_server

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def database_relay() -> Relay:
    host = connection.settings_dict["HOST"] or "localhost"
    port = int(connection.settings_dict["PORT"] or 5432)
    if host.startswith("/"):
        return Relay(unix_path=f"{host}/.s.PGSQL.{port}")
    return Relay(tcp=(host, port))


def redis_relay() -> Relay:
    parsed = urlparse(settings.REDIS_URL)
    return Relay(tcp=(unquote(parsed.hostname or "127.0.0.1"), parsed.port or 6379))


@pytest.fixture
def relays() -> Iterator[tuple[Relay, Relay]]:
    database, redis = database_relay(), redis_relay()
    database.restore()
    redis.restore()
    yield database, redis
    database.cut()
    redis.cut()


def readyz_until(url: str, status: int, timeout: float = 60) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        answer = requests.get(f"{url}/readyz", timeout=10)
        if answer.status_code == status:
            return answer.json()
        if time.monotonic() > deadline:
            raise AssertionError(f"/readyz stayed {answer.status_code}: {answer.text}")
        time.sleep(0.25)


def all_ready(url: str) -> None:
    """Both web processes are back (each checks at most once a second): ten probes in a
    row, spread over both, answer ready."""
    deadline = time.monotonic() + 60
    in_a_row = 0
    while in_a_row < 10:
        assert time.monotonic() < deadline, "a web process did not recover"
        ok = requests.get(f"{url}/readyz", timeout=10).status_code == 200
        in_a_row = in_a_row + 1 if ok else 0
        time.sleep(0.1)


def test_readyz_fails_with_the_database_or_redis_away_and_recovers(
    tmp_path: Path, relays: tuple[Relay, Relay]
) -> None:
    database, redis = relays
    user = connection.settings_dict["USER"] or "postgres"
    env = {
        "DATABASE_URL": f"postgresql://{user}@127.0.0.1:{database.port}/"
        f"{connection.settings_dict['NAME']}",
        "REDIS_URL": f"redis://127.0.0.1:{redis.port}/0",
        "DB_POOL_TIMEOUT": "1",
    }
    with web_server(tmp_path / "web.log", **env) as url:
        assert readyz_until(url, 200) == {"status": "ready"}

        database.cut()
        answer = readyz_until(url, 503)
        assert answer["status"] == "unavailable"
        assert answer["reason"].startswith("database: "), answer
        assert requests.get(f"{url}/healthz", timeout=10).status_code == 200
        database.restore()
        assert readyz_until(url, 200) == {"status": "ready"}
        all_ready(url)

        redis.cut()
        answer = readyz_until(url, 503)
        assert answer["reason"].startswith("redis: "), answer
        redis.restore()
        assert readyz_until(url, 200) == {"status": "ready"}
        all_ready(url)
