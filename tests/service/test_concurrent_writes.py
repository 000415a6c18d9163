"""One writer for many processes: every write lands once, committed when answered."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import closing
from typing import Any, NamedTuple

import pytest
from micro_namedtuple_sqlite_persister.client import RemoteEngine, connect
from micro_namedtuple_sqlite_persister.server import ServerProcess

from .conftest import CLIENT_TIMEOUT_S, create_sports_tables
from .models import (
    Counter,
    League,
    Team,
    save_counter_pair,
    save_counters,
    save_counters_with,
)

WORKERS = 4
SAVES_PER_WORKER = 150


@pytest.fixture
def counters(client: RemoteEngine) -> RemoteEngine:
    client.ensure_table_created(Counter)
    return client


def expected_counts() -> list[int]:
    return sorted(
        worker * 1_000_000 + i
        for worker in range(WORKERS)
        for i in range(SAVES_PER_WORKER)
    )


def assert_every_counter_saved_once(
    reader: sqlite3.Connection, ids_by_worker: list[list[int]]
) -> None:
    rows = reader.execute("SELECT id, count FROM Counter").fetchall()
    assert sorted(count for _, count in rows) == expected_counts()
    returned_ids = sorted(row_id for ids in ids_by_worker for row_id in ids)
    assert returned_ids == sorted(row_id for row_id, _ in rows)


# -- single writer, many worker processes ----------------------------------------------


@pytest.mark.timeout(120)
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_pool_workers_saving_at_once_store_every_row_exactly_once(
    method: str,
    server: ServerProcess,
    counters: RemoteEngine,
    reader: sqlite3.Connection,
) -> None:
    jobs = [(server.address, worker, SAVES_PER_WORKER) for worker in range(WORKERS)]

    with multiprocessing.get_context(method).Pool(WORKERS) as pool:
        ids_by_worker = pool.map(save_counter_pair, jobs)

    assert_every_counter_saved_once(reader, ids_by_worker)


@pytest.mark.timeout(120)
def test_process_pool_executor_workers_store_every_row_exactly_once(
    server: ServerProcess, counters: RemoteEngine, reader: sqlite3.Connection
) -> None:
    with ProcessPoolExecutor(WORKERS) as executor:
        futures = [
            executor.submit(save_counters, server.address, worker, SAVES_PER_WORKER)
            for worker in range(WORKERS)
        ]
        ids_by_worker = [future.result() for future in futures]

    assert_every_counter_saved_once(reader, ids_by_worker)


@pytest.mark.timeout(120)
def test_client_passed_to_spawned_workers_connects_in_each_of_them(
    counters: RemoteEngine, reader: sqlite3.Connection
) -> None:
    counters.ping()  # the parent's socket exists before the client is pickled
    context = multiprocessing.get_context("spawn")

    with ProcessPoolExecutor(WORKERS, mp_context=context) as executor:
        futures = [
            executor.submit(save_counters_with, counters, worker, SAVES_PER_WORKER)
            for worker in range(WORKERS)
        ]
        ids_by_worker = [future.result() for future in futures]

    assert_every_counter_saved_once(reader, ids_by_worker)


# -- acknowledged means committed ------------------------------------------------------


def test_saved_row_is_in_the_file_as_soon_as_save_returns(
    counters: RemoteEngine, reader: sqlite3.Connection
) -> None:
    for count in range(50):
        saved = counters.save(Counter(None, count))

        row = reader.execute("SELECT count FROM Counter WHERE id = ?", (saved.id,))
        assert row.fetchone() == (count,)


def test_deleted_row_is_gone_from_the_file_as_soon_as_delete_returns(
    counters: RemoteEngine, reader: sqlite3.Connection
) -> None:
    saved = counters.save(Counter(None, 1))

    counters.delete(saved)

    assert reader.execute("SELECT count(*) FROM Counter").fetchone() == (0,)


@pytest.mark.timeout(60)
def test_saved_rows_are_in_the_file_with_synchronous_full(
    start_server: Callable[..., ServerProcess], server_db: Any
) -> None:
    server = start_server(synchronous="full")
    with connect(server.address, timeout=CLIENT_TIMEOUT_S) as client:
        client.ensure_table_created(Counter)
        saved = [client.save(Counter(None, count)) for count in range(20)]
    with closing(sqlite3.connect(f"file:{server_db}?mode=ro", uri=True)) as reader:
        stored = reader.execute("SELECT id, count FROM Counter ORDER BY id")
        assert [Counter(*row) for row in stored] == saved


# -- a failing request rolls back alone ------------------------------------------------


@pytest.fixture
def clients(server: ServerProcess) -> Iterator[list[RemoteEngine]]:
    opened = [connect(server.address, timeout=CLIENT_TIMEOUT_S) for _ in range(6)]
    yield opened
    for engine in opened:
        engine.close()


def run_in_threads(calls: list[Callable[[], Any]], stagger_s: float = 0.0) -> list[Any]:
    """Run each call in its own thread; its result or the exception it raised.

    With `stagger_s`, each thread starts that long after the one before, so
    their requests reach the server in order.
    """
    results: list[Any] = [None] * len(calls)

    def run(index: int) -> None:
        try:
            results[index] = calls[index]()
        except Exception as exc:
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
        time.sleep(stagger_s)
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads)
    return results


@pytest.mark.timeout(60)
def test_failing_request_in_a_batch_rolls_back_alone(
    client: RemoteEngine, clients: list[RemoteEngine], reader: sqlite3.Connection
) -> None:
    create_sports_tables(client)
    big = client.save(League(None, "Big"))
    good = [Team(None, f"good{i}", big) for i in range(4)]
    # The second team refers to no league: the request fails after the first
    # team was inserted, so its rollback must undo that insert and nothing else.
    bad = [Team(None, "bad-first", big), Team(None, "bad-second", 999)]
    calls: list[Callable[[], Any]] = [
        lambda engine=engine, team=team: engine.save(team)
        for engine, team in zip(clients[:4], good, strict=True)
    ]
    calls.append(lambda: clients[4].save_many(bad))
    calls.append(lambda: clients[5].save(Team(None, "bad-alone", 999)))

    # The other clients' writes wait behind this transaction, then run in one batch.
    results: list[Any] = []
    runner = threading.Thread(target=lambda: results.extend(run_in_threads(calls)))
    with client.transaction():
        client.save(League(None, "Held"))
        runner.start()
        time.sleep(0.5)  # let every request reach the server and wait there

    runner.join(60)
    assert [type(result) for result in results[:4]] == [Team] * 4
    assert isinstance(results[4], sqlite3.IntegrityError)
    assert isinstance(results[5], sqlite3.IntegrityError)
    stored = reader.execute("SELECT teamname FROM Team ORDER BY id").fetchall()
    assert sorted(name for (name,) in stored) == [f"good{i}" for i in range(4)]


class PageLimit(NamedTuple):
    pages: int


@pytest.mark.timeout(60)
def test_disk_full_mid_batch_fails_every_write_of_the_batch_and_stores_none(
    client: RemoteEngine, clients: list[RemoteEngine], reader: sqlite3.Connection
) -> None:
    create_sports_tables(client)
    big = client.save(League(None, "Big"))
    (pages,) = reader.execute("PRAGMA page_count").fetchone()
    calls: list[Callable[[], Any]] = [
        lambda engine=engine, i=i: engine.save(Team(None, f"small{i}", big))
        for i, engine in enumerate(clients[:3])
    ]
    # Needs many new pages: SQLite answers "disk full" and, as it does for that
    # error, rolls back the whole transaction, with the small saves before it.
    calls.append(lambda: clients[3].save(Team(None, "x" * 300_000, big)))
    for engine in clients[:4]:
        engine.ensure_table_created(Team)  # each save below is then one request

    results: list[Any] = []
    # The big save must run after the small ones: staggered, they wait behind
    # the transaction in the order they were sent.
    runner = threading.Thread(
        target=lambda: results.extend(run_in_threads(calls, stagger_s=0.1))
    )
    with client.transaction():
        # Inside a transaction a query runs on the writer's connection.
        set_limit = f"PRAGMA max_page_count = {pages + 2}"
        assert client.query(PageLimit, set_limit).fetchall() == [(pages + 2,)]
        runner.start()
        # Every save now waits for this transaction, to run in one batch; under
        # the client's first re-send (1 s), which would make it a retry test.
        time.sleep(0.8)

    runner.join(60)
    assert all(isinstance(result, sqlite3.OperationalError) for result in results)
    assert all("full" in str(result) for result in results)
    assert reader.execute("SELECT count(*) FROM Team").fetchone() == (0,)
    with pytest.raises(sqlite3.OperationalError, match="full"):  # alone this time
        client.save(Team(None, "y" * 300_000, big))
    after = client.save(Team(None, "after", big))  # the server goes on
    assert reader.execute("SELECT teamname FROM Team").fetchall() == [("after",)]
    assert after.id is not None


@pytest.mark.timeout(60)
def test_concurrent_good_and_failing_requests_each_get_their_own_outcome(
    client: RemoteEngine, clients: list[RemoteEngine], reader: sqlite3.Connection
) -> None:
    create_sports_tables(client)
    big = client.save(League(None, "Big"))

    def save_some(engine: RemoteEngine, worker: int) -> list[Any]:
        outcomes = []
        for i in range(40):
            league = big if i % 3 else 999
            try:
                outcomes.append(engine.save(Team(None, f"{worker}-{i}", league)))
            except sqlite3.IntegrityError as exc:
                outcomes.append(exc)
        return outcomes

    results = run_in_threads(
        [lambda e=engine, w=w: save_some(e, w) for w, engine in enumerate(clients)]
    )

    saved = [row for outcomes in results for row in outcomes if type(row) is Team]
    failed = [row for outcomes in results for row in outcomes if type(row) is not Team]
    assert all(isinstance(error, sqlite3.IntegrityError) for error in failed)
    assert len(saved) == 6 * 26 and len(failed) == 6 * 14
    stored = reader.execute("SELECT id, teamname FROM Team").fetchall()
    assert sorted(stored) == sorted((team.id, team.teamname) for team in saved)


# -- reads after an acknowledged write -------------------------------------------------


def test_write_acknowledged_to_one_client_is_seen_by_every_later_read(
    client: RemoteEngine, other_client: RemoteEngine
) -> None:
    create_sports_tables(client)
    big = client.save(League(None, "Big"))
    sql = "SELECT * FROM Team WHERE id = ?"

    for i in range(30):
        team = client.save(Team(None, f"T{i}", big))

        assert other_client.find(Team, team.id).teamname == team.teamname
        assert other_client.find(Team, team.id, deep=True) == team
        assert other_client.find_by(Team, teamname=f"T{i}").id == team.id
        assert other_client.query(Team, sql, [team.id]).fetchone().id == team.id


def test_write_in_one_process_is_seen_by_a_read_in_another(
    server: ServerProcess, counters: RemoteEngine
) -> None:
    ids = save_counters_in_child(server.address)

    rows = counters.query(Counter, "SELECT * FROM Counter ORDER BY id").fetchall()

    assert [row.id for row in rows] == ids


def save_counters_in_child(address: str) -> list[int]:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        started = time.monotonic()
        ids = pool.apply(save_counters, (address, 0, 10))
        assert time.monotonic() - started < 60
    return ids
