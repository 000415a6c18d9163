"""Crashes and restarts: what was acknowledged survives, nothing is half-done."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from .conftest import SpawnWorker, StartServer
from .models import (
    BATCH_ROWS,
    SLOW_COUNT_SQL,
    WORKER_TIMEOUT_S,
    Marker,
    Span,
    hold_transaction,
    read_acknowledged,
    save_marker_batches,
    save_markers,
    save_markers_until_refused,
    wait_for_acks,
)
from .raw import integrity_check, names_stored

WORKERS = 4
ACKS_PER_PHASE = 25
LEASE_TIMEOUT_S = 1.5


def ack_files(tmp_path: Path, count: int = WORKERS) -> list[Path]:
    return [tmp_path / f"acks-{worker}.txt" for worker in range(count)]


def acknowledged_names(paths: list[Path]) -> list[str]:
    return [name for path in paths for name in read_acknowledged(path)]


def join_all(workers: list[Any]) -> list[int | None]:
    for worker in workers:
        worker.join(WORKER_TIMEOUT_S)
    return [worker.exitcode for worker in workers]


@pytest.mark.timeout(120)
def test_server_killed_during_writes_keeps_each_acknowledged_write_exactly_once(
    start_server: StartServer,
    clients: Any,
    spawn_worker: SpawnWorker,
    spawn_event: Any,
    db_path: Path,
    tmp_path: Path,
) -> None:
    server = start_server()
    clients().ensure_table_created(Marker)
    stop = spawn_event()
    paths = ack_files(tmp_path)
    workers = [
        spawn_worker(save_markers, server.address, worker, str(path), stop)
        for worker, path in enumerate(paths)
    ]
    wait_for_acks(paths, [ACKS_PER_PHASE] * WORKERS, workers)

    server.kill()
    at_kill = [len(read_acknowledged(path)) for path in paths]
    time.sleep(0.5)  # the workers' saves meanwhile wait and re-send
    start_server()
    # The same client objects carry on by themselves once the server is back.
    wait_for_acks(paths, [count + ACKS_PER_PHASE for count in at_kill], workers)
    stop.set()

    assert join_all(workers) == [0] * WORKERS
    stored = Counter(names_stored(db_path))
    acknowledged = acknowledged_names(paths)
    assert [name for name in acknowledged if stored[name] != 1] == []
    assert [name for name, copies in stored.items() if copies > 1] == []
    assert integrity_check(db_path) == ["ok"]


@pytest.mark.timeout(60)
def test_worker_killed_mid_request_leaves_each_batch_whole_or_absent(
    start_server: StartServer,
    clients: Any,
    spawn_worker: SpawnWorker,
    db_path: Path,
    tmp_path: Path,
) -> None:
    server = start_server()
    engine = clients()
    engine.ensure_table_created(Marker)
    paths = ack_files(tmp_path)
    workers = [
        spawn_worker(save_marker_batches, server.address, worker, str(path))
        for worker, path in enumerate(paths)
    ]
    wait_for_acks(paths, [3] * WORKERS, workers)

    workers[0].kill()  # SIGKILL
    workers[0].join(WORKER_TIMEOUT_S)
    survivors = [len(read_acknowledged(path)) + 3 for path in paths[1:]]
    wait_for_acks(paths[1:], survivors, workers[1:])
    assert engine.save(Marker(None, "honest", 9)).id is not None
    for worker in workers[1:]:
        worker.kill()
    join_all(workers)

    per_batch = Counter(name.rsplit("-", 1)[0] for name in names_stored(db_path))
    del per_batch["honest"]
    assert {count for count in per_batch.values()} == {BATCH_ROWS}
    assert set(acknowledged_names(paths)) <= set(per_batch)


@pytest.mark.timeout(60)
def test_worker_killed_inside_transaction_is_rolled_back_when_its_lease_expires(
    start_server: StartServer,
    clients: Any,
    spawn_worker: SpawnWorker,
    db_path: Path,
    tmp_path: Path,
) -> None:
    server = start_server(lease_timeout=LEASE_TIMEOUT_S)
    engine = clients()
    engine.ensure_table_created(Marker)
    before = engine.save(Marker(None, "before", 0))
    (path,) = ack_files(tmp_path, 1)
    holder = spawn_worker(hold_transaction, server.address, str(path))
    wait_for_acks([path], [2], [holder])

    holder.kill()  # SIGKILL, inside transaction()
    holder.join(WORKER_TIMEOUT_S)
    started = time.monotonic()
    assert engine.find(Marker, before.id) == before  # reads go on meanwhile
    assert engine.find_by(Marker, name="before") == before
    reads_took = time.monotonic() - started
    engine.save(Marker(None, "after", 0))  # waits for the lease to expire
    save_took = time.monotonic() - started

    assert reads_took < LEASE_TIMEOUT_S / 2
    assert save_took < LEASE_TIMEOUT_S + 2.0
    assert sorted(names_stored(db_path)) == ["after", "before"]
    assert "write lease expired, rolled back" in server.read_log()


@pytest.mark.timeout(60)
def test_sigterm_under_load_answers_received_requests_and_exits_zero(
    start_server: StartServer,
    clients: Any,
    spawn_worker: SpawnWorker,
    db_path: Path,
    tmp_path: Path,
) -> None:
    server = start_server()
    engine = clients()
    engine.ensure_table_created(Marker)
    paths = ack_files(tmp_path)
    workers = [
        spawn_worker(save_markers_until_refused, server.address, worker, str(p), 3.0)
        for worker, p in enumerate(paths)
    ]
    wait_for_acks(paths, [ACKS_PER_PHASE] * WORKERS, workers)
    slow_result: list[Span] = []
    slow_query = threading.Thread(
        target=lambda: slow_result.extend(
            clients().query(Span, SLOW_COUNT_SQL, [3_000_000]).fetchall()
        ),
        daemon=True,
    )
    slow_query.start()
    time.sleep(0.3)  # the query is running on a reader

    exit_code = server.stop()
    slow_query.join(WORKER_TIMEOUT_S)

    assert exit_code == 0
    assert slow_result == [Span(1, 3_000_000)]
    assert join_all(workers) == [0] * WORKERS
    stored = Counter(names_stored(db_path))
    # Every write the server took was answered, and every answered one is kept.
    assert sorted(stored) == sorted(acknowledged_names(paths))
    assert set(stored.values()) == {1}
    assert integrity_check(db_path) == ["ok"]
