"""A 200 MB body sent to the web server as shipped is refused without being stored: the
server's memory and its temporary directory stay flat."""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.e2e.web_server import web_server

pytestmark = pytest.mark.django_db(transaction=True)

BODY = 200 * 1024 * 1024


def server_rss_kib(port: int) -> int:
    """Resident memory of the gunicorn master and workers serving `port`."""
    total = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            if f"127.0.0.1:{port}".encode() not in cmdline or b"gunicorn" not in cmdline:
                continue
            status = (proc / "status").read_text()
        except OSError:
            continue
        total += next(
            int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS")
        )
    return total


def send_large(port: int, path: str, *, chunked: bool) -> bytes:
    """Send headers and up to 200 MB of body; return what the server answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {BODY}"
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{framing}\r\n"
            "Content-Type: application/octet-stream\r\n\r\n".encode()
        )
        piece = b"z" * (1024 * 1024)
        sent = 0
        try:
            while sent < BODY:
                sock.sendall(b"100000\r\n" + piece + b"\r\n" if chunked else piece)
                sent += len(piece)
        except OSError:
            pass  # the server answered and closed: it stopped reading, as it should
        sock.settimeout(30)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except OSError:
            pass
        return answer


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_200_mb_body_is_refused_without_being_stored(tmp_path: Path, chunked: bool) -> None:
    spool = tmp_path / "tmp"
    spool.mkdir()
    with web_server(tmp_path / "web.log", TMPDIR=str(spool)) as url:
        port = urlparse(url).port
        assert port is not None
        before = server_rss_kib(port)
        for path in ("/api/v1/edits", "/v1/images/edits", "/studio/"):
            answer = send_large(port, path, chunked=chunked)
            assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
            assert b"request_too_large" in answer
        grown_mib = (server_rss_kib(port) - before) / 1024
    assert grown_mib < 64, f"the server grew by {grown_mib:.0f} MiB"
    assert list(spool.iterdir()) == []  # nothing spooled to disk
