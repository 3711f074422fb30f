"""A TCP relay a test can cut and restore: the network between a process and a service.

The process under test talks to 127.0.0.1:<port>; the relay passes the bytes on to the real
service (a TCP address or a Unix socket, as the embedded PostgreSQL has). `cut()` closes the
listener and every connection through it, so the service is away for that process (and
only for it: the test suite's own connections are untouched); `restore()` listens again on
the same port.
"""

from __future__ import annotations

import contextlib
import socket
import threading

from bench.common import free_port


class Relay:
    def __init__(self, *, unix_path: str | None = None, tcp: tuple[str, int] | None = None):
        self.unix_path = unix_path
        self.tcp = tcp
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    def _connect_upstream(self) -> socket.socket:
        if self.unix_path:
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.unix_path)
            return upstream
        assert self.tcp is not None
        return socket.create_connection(self.tcp, timeout=5)

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._sockets = self._sockets, set()
        for sock in [listener, *sockets]:
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = self._connect_upstream()
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    upstream.close()
                    return
                self._sockets |= {client, upstream}
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, target), daemon=True).start()

    def _pipe(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
