"""Reads beside the writer: long queries, and large results streamed in pages."""

from __future__ import annotations

import threading
import time
import tracemalloc
from collections.abc import Callable
from typing import NamedTuple

import pytest
from micro_namedtuple_sqlite_persister.client import RemoteEngine, connect
from micro_namedtuple_sqlite_persister.client.transport import FIRST_RESEND_S
from micro_namedtuple_sqlite_persister.server import ServerProcess

from .conftest import CLIENT_TIMEOUT_S
from .models import Counter, League

# A million steps take about a third of a second of SQLite work here.
SLOW_QUERY = (
    "WITH RECURSIVE steps(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM steps "
    "WHERE x < ?) SELECT count(*) FROM steps"
)


class Total(NamedTuple):
    total: int


@pytest.mark.timeout(60)
def test_long_query_does_not_hold_up_saves_of_other_clients(
    client: RemoteEngine, other_client: RemoteEngine
) -> None:
    other_client.ensure_table_created(League)
    finished: list[str] = []
    query_started = threading.Event()

    def run_slow_query() -> None:
        query_started.set()
        rows = client.query(Total, SLOW_QUERY, [4_000_000]).fetchall()
        assert rows == [Total(4_000_000)]
        finished.append("query")

    query = threading.Thread(target=run_slow_query)
    query.start()
    query_started.wait(10)
    time.sleep(0.3)  # the query is running on the server by now
    for i in range(20):
        other_client.save(League(None, f"L{i}"))
    finished.append("saves")
    query.join(50)

    assert finished == ["saves", "query"]
    assert len(other_client.query(League, "SELECT * FROM League").fetchall()) == 20


ROWS = 200_000
INSERT_ROWS = (
    "INSERT INTO Counter (count) WITH RECURSIVE steps(x) AS (SELECT 0 UNION ALL "
    "SELECT x + 1 FROM steps WHERE x < ?) SELECT x FROM steps"
)


@pytest.mark.timeout(120)
def test_fetchmany_loop_over_a_large_result_keeps_client_memory_bounded(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(page_rows=500)
    with connect(server.address, timeout=CLIENT_TIMEOUT_S) as client:
        client.ensure_table_created(Counter)
        client.query(Counter, INSERT_ROWS, [ROWS - 1]).fetchall()
        bytes_per_row = measure_bytes_per_row(client)

        tracemalloc.start()
        try:
            seen, total = read_in_batches(client)
            peak_bytes = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    assert seen == ROWS and total == ROWS * (ROWS - 1) // 2
    result_bytes = bytes_per_row * ROWS
    assert peak_bytes < result_bytes / 10, (peak_bytes, result_bytes)


def measure_bytes_per_row(client: RemoteEngine) -> float:
    """What one Counter row of a result costs in client memory."""
    sample = 10_000
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        rows = client.query(Counter, "SELECT * FROM Counter LIMIT ?", [sample])
        kept = rows.fetchall()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(kept) == sample
    return (after - before) / sample


def read_in_batches(client: RemoteEngine) -> tuple[int, int]:
    cursor = client.query(Counter, "SELECT * FROM Counter ORDER BY id")
    seen = total = 0
    while batch := cursor.fetchmany(1000):
        seen += len(batch)
        total += sum(row.count for row in batch)
    return seen, total


def test_unfinished_cursor_closes_and_server_goes_on(client: RemoteEngine) -> None:
    client.ensure_table_created(Counter)
    client.save_many([Counter(None, i) for i in range(3000)])
    cursor = client.query(Counter, "SELECT * FROM Counter ORDER BY id")

    first = cursor.fetchmany(10)
    cursor.close()

    assert [row.count for row in first] == list(range(10))
    assert cursor.fetchone() is None
    assert len(client.query(Counter, "SELECT * FROM Counter").fetchall()) == 3000


@pytest.mark.timeout(60)
def test_query_slower_than_the_client_resend_interval_runs_once(
    server: ServerProcess, client: RemoteEngine
) -> None:
    started = time.monotonic()
    assert client.query(Total, SLOW_QUERY, [6_000_000]).fetchone() == Total(6_000_000)
    assert time.monotonic() - started > FIRST_RESEND_S, "make the query slower"

    assert server.stop() == 0
    summary = [line for line in server.read_log().splitlines() if " stopped " in line]
    assert "reads=1 " in summary[-1]
