"""The admin's login takes as many attempts as the API's login: per IP and per address."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def attempt(client: Client, username: str) -> int:
    return client.post(
        "/admin/login/", {"username": username, "password": "wrong guess"}
    ).status_code


def test_admin_login_attempts_are_limited_per_ip(settings: object, admin_user: object) -> None:
    # an hour's window: a minute's can roll over between attempts on a busy machine
    settings.AUTH_RATE = "3/h"  # type: ignore[attr-defined]
    client = Client()
    statuses = [attempt(client, f"guess{n}@example.com") for n in range(4)]
    assert statuses == [200, 200, 200, 429]
    # the right password is refused too while the limit holds
    refused = client.post(
        "/admin/login/", {"username": "admin@example.com", "password": "password"}
    )
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0


def test_admin_login_attempts_are_limited_per_address(settings: object) -> None:
    settings.AUTH_RATE = "3/h"  # type: ignore[attr-defined]
    statuses = [attempt(Client(REMOTE_ADDR=f"10.0.0.{n}"), "admin@example.com") for n in range(4)]
    assert statuses == [200, 200, 200, 429]


def test_reading_the_admin_login_page_is_not_counted(settings: object) -> None:
    settings.AUTH_RATE = "2/h"  # type: ignore[attr-defined]
    client = Client()
    assert [client.get("/admin/login/").status_code for _ in range(3)] == [200, 200, 200]
    assert attempt(client, "admin@example.com") == 200
