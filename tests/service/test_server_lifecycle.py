"""Starting, stopping and running the server as a user does."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest
import zmq
from micro_namedtuple_sqlite_persister import ServerTimeoutError
from micro_namedtuple_sqlite_persister.client import RemoteEngine, connect
from micro_namedtuple_sqlite_persister.server import ServerProcess

from .models import Counter

REPO_ROOT = Path(__file__).resolve().parents[2]
SEED_SCRIPT = REPO_ROOT.parent / "shared" / "seed" / "run_seed.py"
SERVER_MODULE = "micro_namedtuple_sqlite_persister.server"


def test_sigterm_stops_server_with_exit_0_and_a_summary_in_the_log(
    server: ServerProcess, client: RemoteEngine
) -> None:
    client.ensure_table_created(Counter)
    client.save(Counter(None, 1))

    exit_code = server.stop()

    log = server.read_log()
    assert exit_code == 0
    assert f"listening address={server.address}" in log
    assert "stopping signal=SIGTERM" in log
    assert re.search(r" stopped seconds=\S+ commits=\d+ .*writes=\d+", log)


def test_ctrl_c_stops_server_with_exit_0(server: ServerProcess) -> None:
    assert server.process is not None

    server.process.send_signal(signal.SIGINT)

    assert server.process.wait(20) == 0
    assert "stopping signal=SIGINT" in server.read_log()


@pytest.mark.timeout(60)
def test_saves_acknowledged_before_sigterm_are_all_in_the_file(
    server: ServerProcess, client: RemoteEngine, server_db: Path
) -> None:
    client.ensure_table_created(Counter)
    acknowledged: list[int] = []
    savers_started = threading.Semaphore(0)

    def save_until_the_server_stops() -> None:
        with connect(server.address, timeout=2.0) as saver:
            try:
                for count in range(100_000):
                    acknowledged.append(saver.save(Counter(None, count)).id)
                    if count == 0:
                        savers_started.release()
            except ServerTimeoutError:
                pass

    savers = [threading.Thread(target=save_until_the_server_stops) for _ in range(3)]
    for saver in savers:
        saver.start()
    for _ in savers:
        assert savers_started.acquire(timeout=20)

    assert server.stop() == 0
    for saver in savers:
        saver.join(30)

    with closing(sqlite3.connect(f"file:{server_db}?mode=ro", uri=True)) as reader:
        stored = {row_id for (row_id,) in reader.execute("SELECT id FROM Counter")}
    assert len(acknowledged) >= 3 and set(acknowledged) <= stored


def test_malformed_frame_is_dropped_and_server_goes_on(
    server: ServerProcess, client: RemoteEngine
) -> None:
    context = zmq.Context()
    try:
        raw = context.socket(zmq.DEALER)
        raw.connect(server.address)
        raw.send(b"\xc1 not msgpack")
        raw.close(linger=1000)
    finally:
        context.term()

    assert client.ping()["pid"] == server.pid
    assert "dropped frame" in wait_for_log(server, "dropped frame")


def wait_for_log(server: ServerProcess, text: str) -> str:
    """The server's log once it shows `text`, or after five seconds."""
    for _ in range(50):
        log = server.read_log()
        if text in log:
            return log
        time.sleep(0.1)
    return server.read_log()


def test_server_refuses_tcp_address_reachable_from_other_hosts(
    start_server: Callable[..., ServerProcess],
) -> None:
    with pytest.raises(Exception, match="exited with code 2"):
        start_server("tcp://0.0.0.0:0", start_timeout_s=10)


def test_help_documents_every_option() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", SERVER_MODULE, "--help"],
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert shown.returncode == 0
    for option in (
        "--bind",
        "--synchronous",
        "--lease-timeout",
        "--max-message-bytes",
        "--page-rows",
        "--readers",
        "--max-batch",
        "--stop-timeout",
    ):
        assert option in shown.stdout
    assert "normal" in shown.stdout and "full" in shown.stdout


@pytest.mark.timeout(600)
def test_seed_example_runs_to_the_end_through_a_server() -> None:
    assert SEED_SCRIPT.is_file(), f"the seed runner is missing: {SEED_SCRIPT}"

    # A session of its own, so the server it starts goes down with it on failure.
    seed = subprocess.Popen(
        [sys.executable, str(SEED_SCRIPT), "remote"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = seed.communicate(timeout=540)
    finally:
        if seed.poll() is None:
            os.killpg(seed.pid, signal.SIGKILL)
            seed.wait()

    assert seed.returncode == 0, output


def _start_refused(db: Path, address: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "micro_namedtuple_sqlite_persister.server"]
    return subprocess.run(
        [*command, str(db), "--bind", address],
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.timeout(60)
def test_second_server_on_same_database_refuses_to_start(
    server: ServerProcess, server_db: Path, tmp_path: Path
) -> None:
    second = _start_refused(server_db, f"ipc://{tmp_path}/second.sock")

    assert second.returncode != 0
    assert "another server already serves" in second.stderr
    assert connect(server.address, timeout=5).ping()["pid"] == server.pid


@pytest.mark.timeout(60)
def test_second_server_on_same_ipc_path_refuses_and_first_keeps_serving(
    server: ServerProcess, tmp_path: Path
) -> None:
    second = _start_refused(tmp_path / "other.db", server.address)

    assert second.returncode != 0
    assert "another process is listening" in second.stderr
    assert connect(server.address, timeout=5).ping()["pid"] == server.pid


def test_connect_to_an_address_without_tcp_or_ipc_scheme_says_what_it_expects() -> None:
    with pytest.raises(ValueError, match="tcp://HOST:PORT or ipc://PATH"):
        connect("http://127.0.0.1:1")


@pytest.mark.timeout(60)
def test_clean_stop_removes_the_ipc_socket_file(server: ServerProcess) -> None:
    path = server.address[len("ipc://") :]
    assert os.path.exists(path)

    assert server.stop() == 0

    assert not os.path.exists(path)
