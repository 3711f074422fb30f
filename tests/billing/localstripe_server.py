"""Run localstripe on loopback for the test suite: `python localstripe_server.py PORT`.

localstripe's own launcher listens on every interface and saves its state to
/tmp/localstripe.pickle after each write, then loads it on the next start. Here it listens
on 127.0.0.1 only and never touches that file, so each run starts empty and runs in
parallel (other checkouts, other engineers) cannot see each other's objects.
"""

from __future__ import annotations

import sys

from aiohttp import web
from localstripe import resources, server


def _keep_in_memory(self: resources.Store) -> None:
    """The state lives in this process only."""


def main() -> None:
    port = int(sys.argv[1])
    resources.Store.dump_to_disk = _keep_in_memory  # type: ignore[method-assign]
    web.run_app(server.app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
