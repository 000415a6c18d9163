"""One client object: across fork, from many threads, and through server outages."""

from __future__ import annotations

import multiprocessing
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable

import pytest
from micro_namedtuple_sqlite_persister import ServerTimeoutError
from micro_namedtuple_sqlite_persister.client import RemoteEngine, connect
from micro_namedtuple_sqlite_persister.server import ServerProcess

from .models import Counter, League

TIMEOUT_SLACK_S = 1.0


# -- fork and threads ------------------------------------------------------------------


def save_then_exit(engine: RemoteEngine, count: int) -> None:
    """Run in a forked child: use the parent's client object as it is."""
    saved = engine.save(Counter(None, count))
    assert engine.find(Counter, saved.id) == saved


@pytest.mark.timeout(60)
def test_client_used_before_fork_works_in_the_children_and_the_parent(
    client: RemoteEngine, reader: sqlite3.Connection
) -> None:
    client.ensure_table_created(Counter)
    client.save(Counter(None, 0))  # the parent's socket is open and in use
    fork = multiprocessing.get_context("fork")
    children = [
        fork.Process(target=save_then_exit, args=(client, count))
        for count in range(1, 4)
    ]

    try:
        for child in children:
            child.start()
        for child in children:
            child.join(30)
    finally:
        for child in children:
            if child.is_alive():
                child.kill()
    client.save(Counter(None, 4))

    assert [child.exitcode for child in children] == [0, 0, 0]
    stored = reader.execute("SELECT count FROM Counter ORDER BY count").fetchall()
    assert stored == [(count,) for count in range(5)]


@pytest.mark.timeout(60)
def test_client_shared_by_threads_serves_each_of_them(
    client: RemoteEngine, reader: sqlite3.Connection
) -> None:
    client.ensure_table_created(Counter)
    errors: list[BaseException] = []
    ids: list[int] = []

    def save_and_read(thread: int) -> None:
        try:
            for i in range(40):
                saved = client.save(Counter(None, thread * 1000 + i))
                assert client.find(Counter, saved.id) == saved
                ids.append(saved.id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=save_and_read, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(50)

    assert errors == []
    assert len(set(ids)) == 8 * 40
    assert reader.execute("SELECT count(*) FROM Counter").fetchone() == (8 * 40,)


# -- a server that is down -------------------------------------------------------------


def assert_times_out_within(timeout_s: float, call: Callable[[], object]) -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError) as raised:
        call()
    elapsed = time.monotonic() - started

    assert isinstance(raised.value, ServerTimeoutError)
    assert elapsed <= timeout_s + TIMEOUT_SLACK_S, elapsed


@pytest.mark.timeout(30)
def test_request_to_a_server_never_started_fails_within_timeout(tmp_path) -> None:
    with connect(f"ipc://{tmp_path}/nobody.sock", timeout=1.5) as client:
        assert_times_out_within(1.5, client.ping)
        assert_times_out_within(1.5, lambda: client.find(League, 1))


@pytest.mark.timeout(60)
def test_request_to_a_stopped_server_fails_and_works_again_after_restart(
    start_server: Callable[..., ServerProcess],
) -> None:
    first = start_server()
    client = connect(first.address, timeout=2.0)
    client.ensure_table_created(League)
    big = client.save(League(None, "Big"))

    assert first.stop() == 0
    assert_times_out_within(2.0, lambda: client.find(League, big.id))
    assert_times_out_within(2.0, lambda: client.save(League(None, "Lost")))

    start_server(first.address)
    try:
        # The new server knows no models: the client registers them again.
        assert client.find(League, big.id) == big
        small = client.save(League(None, "Small"))
        assert client.find_by(League, leaguename="Small") == small
    finally:
        client.close()


@pytest.mark.timeout(60)
def test_request_to_a_killed_server_fails_within_timeout(
    server: ServerProcess,
) -> None:
    with connect(server.address, timeout=2.0) as client:
        client.ensure_table_created(League)
        client.save(League(None, "Big"))

        server.kill()

        assert_times_out_within(2.0, lambda: client.save(League(None, "Lost")))
        assert_times_out_within(2.0, client.ping)


EXIT_WITH_SERVER_DOWN = """
import atexit, sys
from micro_namedtuple_sqlite_persister.client import connect

client = connect(sys.argv[1], timeout=1.0)
try:
    client.ping()
except TimeoutError:
    print("timed out")
# Never closed, and used once more while the interpreter exits.
atexit.register(lambda: print("at exit:", type(client.ping()).__name__))
"""


@pytest.mark.timeout(60)
def test_script_using_a_down_server_exits_without_hanging(tmp_path) -> None:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(EXIT_WITH_SERVER_DOWN))

    started = time.monotonic()
    finished = subprocess.run(
        [sys.executable, str(script), f"ipc://{tmp_path}/nobody.sock"],
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert "timed out" in finished.stdout
    assert "ServerTimeoutError" in finished.stderr
    assert time.monotonic() - started < 15
