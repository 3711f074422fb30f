"""Server-side request forgery: webhooks go to public addresses over https, nowhere else."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from generation.models import Job
from generation.webhooks import address_allowed, webhook_post
from tests.conftest import Person, small_job


@pytest.mark.parametrize(
    "url",
    [
        "not a url", "ftp://example.com/hook", "http://example.com/hook",
        "https://user:pass@example.com/hook", "https://10.1.2.3/hook", "https://127.0.0.1/hook",
        "https://[::1]/hook", "https://169.254.169.254/latest/meta-data", "https://localhost/hook",
        "https://[::ffff:192.168.0.1]/hook", "https://100.64.0.1/hook",
    ],
)  # fmt: skip
def test_a_bad_or_private_webhook_url_is_refused_at_submission(alice: Person, url: str) -> None:
    answer = alice.client().post("/api/v1/generations", small_job(webhook=url), format="json")
    assert answer.status_code == 400, answer.content
    assert answer.json()["error"]["param"] == "webhook"
    assert not Job.objects.exists()


def test_an_unknown_event_is_refused(alice: Person) -> None:
    answer = alice.client().post(
        "/api/v1/generations",
        small_job(webhook="https://example.com/hook", webhook_events_filter=["finished"]),
        format="json",
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "webhook_events_filter"


def test_a_name_that_resolves_to_a_metadata_address_is_refused_before_connecting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # DNS is a boundary we do not own: the name resolves as an attacker would have it.
    def resolve(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        assert host == "hooks.example.com"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    connected: list[Any] = []
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: connected.append(a))
    outcome = webhook_post("https://hooks.example.com/hook", b"{}", {})
    assert outcome.status is None and not outcome.retryable
    assert "169.254.169.254" in outcome.error and outcome.error.startswith("refused")
    assert connected == []


def test_allowed_networks_open_only_what_they_name(settings: Any) -> None:
    assert not address_allowed("127.0.0.1")
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    assert address_allowed("127.0.0.1") and address_allowed("::ffff:127.0.0.2")
    assert not address_allowed("10.0.0.1") and not address_allowed("fd00:ec2::254")
    assert address_allowed("93.184.216.34")
