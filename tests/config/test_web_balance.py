"""The shared connection table (config/web_balance.py): each web process writes its own slot,
every process reads all of them, across fork as gunicorn's workers share it."""

from __future__ import annotations

import multiprocessing

from config import web_balance
from config.web_balance import CLOSE_SPACING, ConnectionTable


def _serve_with(table: ConnectionTable, slot: int, connections: int) -> None:
    table.serve(slot)
    for _ in range(connections):
        table.opened()


def sibling(table: ConnectionTable, slot: int, connections: int) -> None:
    """Another process (forked, as gunicorn's workers are) serving `connections`."""
    child = multiprocessing.get_context("fork").Process(
        target=_serve_with, args=(table, slot, connections)
    )
    child.start()
    child.join(30)
    assert child.exitcode == 0


def closes_in(table: ConnectionTable, requests: int) -> int:
    return sum(table.should_close() for _ in range(requests))


def test_a_process_over_its_share_closes_one_connection_per_spacing() -> None:
    table = ConnectionTable()
    sibling(table, 1, 1)
    _serve_with(table, 0, 3)  # 3 of 4 against a share of 2
    assert table.should_close()  # at once
    assert closes_in(table, CLOSE_SPACING - 1) == 0
    assert table.should_close()
    assert closes_in(table, 10 * CLOSE_SPACING) == 10


def test_a_balanced_process_closes_none() -> None:
    table = ConnectionTable()
    sibling(table, 1, 2)
    _serve_with(table, 0, 2)
    assert closes_in(table, 5 * CLOSE_SPACING) == 0
    table.closed()  # 1 against 2: under its share
    assert closes_in(table, 5 * CLOSE_SPACING) == 0


def test_the_share_rounds_up_and_allows_an_eighth_over() -> None:
    for own, other, over in ((3, 2, False), (4, 1, True), (9, 7, False), (10, 6, True)):
        table = ConnectionTable()
        sibling(table, 5, other)
        _serve_with(table, 2, own)
        assert (closes_in(table, CLOSE_SPACING) == 1) is over, (own, other)


def test_one_process_alone_never_closes_and_an_exited_one_no_longer_counts() -> None:
    table = ConnectionTable()
    _serve_with(table, 0, 4)
    assert closes_in(table, 3 * CLOSE_SPACING) == 0
    sibling(table, 1, 0)  # a second process that serves and holds nothing yet
    assert closes_in(table, CLOSE_SPACING) == 1
    table.clear(1)  # the master, after that worker exits
    assert closes_in(table, 3 * CLOSE_SPACING) == 0


def test_the_master_gives_each_worker_a_free_slot() -> None:
    table = ConnectionTable(slots=3)
    assert table.free_slot(set()) == 0
    assert table.free_slot({0, 2}) == 1
    assert table.free_slot({0, 1, 2}) is None  # that worker is left out of the balancing
    unbalanced = ConnectionTable()  # never served: a worker without a slot
    unbalanced.opened()
    assert not unbalanced.should_close()


def test_the_module_has_no_table_until_gunicorns_config_makes_one() -> None:
    assert web_balance.table is None  # so tests and other servers run the plain protocol
