"""Keep-alive connections spread evenly over the web processes.

gunicorn's workers share one listening socket, and a new connection goes to whichever process
wakes first (uvloop then accepts every connection waiting, not one). A client that opens its
few keep-alive connections together, an SDK's pool or a proxy's upstream pool, so often lands
three of four on one process, where they share one interpreter lock and so one core while the
other process idles, and they stay there for as long as they live. Measured with four
connections submitting jobs on 2 cores: a 2:2 split answered 150 to 203 submissions a second
with a p99 of 32 to 42 ms, a 3:1 split 144 to 171 with 49 to 55 ms, and 4:0 103 with 62 ms.

So each process counts its open connections in a table the processes share, and a process
holding more than its share (`ConnectionTable.should_close`: ceil(all connections / serving
processes) and an eighth over) answers a request on one of them with `Connection: close`, at
most one in CLOSE_SPACING of its requests: the client's next connection goes to
whichever process accepts it, and a process at or under its share closes none, so a balanced
server keeps every connection (tests/e2e/test_connection_balance.py). `WEB_BALANCE_CONNECTIONS`
turns it off, for a proxy in front that balances its connections itself.

The table lives in memory that gunicorn's master maps before it forks the workers (an
anonymous shared mapping), two 8-byte words a slot: serving (0 or 1) and open connections.
The master picks a free slot for each worker before forking it and clears the slot when the
worker exits, whatever it died of; the worker marks its slot serving once its application is
loaded, and from then on it alone writes the slot, from its event loop's thread. Aligned
8-byte words are read and written whole, and a count read a moment stale only moves a
rebalance one request later.
"""

from __future__ import annotations

import mmap

SLOTS = 64  # web processes one table can balance; a worker past them is left out of it
# A process closes at most one connection in this many requests. The busier process tends to
# win the next accept (its loop is awake when the connection arrives), so at saturation a
# closed connection often comes straight back: the spacing bounds what that churn costs
# (reconnections, about 0.2 ms of CPU each) to a few per cent of the requests.
CLOSE_SPACING = 16


class ConnectionTable:
    def __init__(self, slots: int = SLOTS) -> None:
        self._memory = mmap.mmap(-1, 16 * slots)  # anonymous and shared: the forks see one
        self._words = memoryview(self._memory).cast("q")
        self.slots = slots
        self.slot: int | None = None  # this process's, once it serves
        self._requests_since_close = CLOSE_SPACING - 1  # this process's: may close at once

    # In gunicorn's master.
    def free_slot(self, taken: set[int]) -> int | None:
        return next((slot for slot in range(self.slots) if slot not in taken), None)

    def clear(self, slot: int) -> None:
        self._words[2 * slot] = 0
        self._words[2 * slot + 1] = 0

    # In a worker.
    def serve(self, slot: int) -> None:
        self.clear(slot)
        self.slot = slot
        self._words[2 * slot] = 1

    def opened(self) -> None:
        if self.slot is not None:
            self._words[2 * self.slot + 1] += 1

    def closed(self) -> None:
        if self.slot is not None:
            self._words[2 * self.slot + 1] -= 1

    def should_close(self) -> bool:
        """For each request: whether to close its connection after the response, because this
        process holds more than its share and has not closed one in CLOSE_SPACING requests.

        The share is ceil(all connections / serving processes), with an eighth of it over
        (none below 8): 3 of 4 connections is over, 9 of 16 is not, 10 of 16 is.
        """
        if self.slot is None:
            return False
        self._requests_since_close += 1
        if self._requests_since_close < CLOSE_SPACING:
            return False
        words = self._words
        serving = sum(words[0::2])
        if serving < 2:
            return False
        share = (sum(words[1::2]) + serving - 1) // serving
        if words[2 * self.slot + 1] <= share + share // 8:
            return False
        self._requests_since_close = 0
        return True


table: ConnectionTable | None = None  # made by platform/gunicorn.conf.py in the master
