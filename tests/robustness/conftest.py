"""Fixtures for the robustness tests: servers, worker processes and raw sockets.

Every server, worker process, client and socket a test opens is closed by a
fixture's clean-up, also when the test fails or times out (pytest-timeout's
signal method unwinds through the fixtures). Servers listen on ipc sockets in
short private directories, so a restarted server can take the same address.
"""

from __future__ import annotations

import multiprocessing
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
from micro_namedtuple_sqlite_persister.client import RemoteEngine, connect
from micro_namedtuple_sqlite_persister.server import ServerProcess

CLIENT_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0

StartServer = Callable[..., ServerProcess]
SpawnWorker = Callable[..., multiprocessing.process.BaseProcess]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "robust.db"


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    """One log for every server a test starts, restarts included."""
    return tmp_path / "server.log"


@pytest.fixture
def address() -> Iterator[str]:
    """An ipc address in a short private directory (socket paths are limited)."""
    directory = tempfile.mkdtemp(prefix="mnsp-r-")
    yield f"ipc://{directory}/server.sock"
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def start_server(db_path: Path, log_path: Path, address: str) -> Iterator[StartServer]:
    """Start servers on `db_path` and `address` (options as ServerProcess)."""
    started: list[ServerProcess] = []

    def start(**options: Any) -> ServerProcess:
        server = ServerProcess(db_path, address, log_path=log_path, **options)
        started.append(server)
        return server.start()

    yield start
    for server in reversed(started):
        server.stop(STOP_TIMEOUT_S)
        server.__exit__(None, None, None)


@pytest.fixture
def clients(address: str) -> Iterator[Callable[..., RemoteEngine]]:
    """Make clients of `address`; all are closed at the end."""
    made: list[RemoteEngine] = []

    def make(timeout: float = CLIENT_TIMEOUT_S) -> RemoteEngine:
        engine = connect(address, timeout=timeout)
        made.append(engine)
        return engine

    yield make
    for engine in made:
        engine.close()


@pytest.fixture
def spawn_worker() -> Iterator[SpawnWorker]:
    """Start spawn-method worker processes; any still alive at the end is killed."""
    context = multiprocessing.get_context("spawn")
    started: list[multiprocessing.process.BaseProcess] = []

    def spawn(target: Callable[..., None], *args: Any) -> Any:
        process = context.Process(target=target, args=args, daemon=True)
        process.start()
        started.append(process)
        return process

    yield spawn
    for process in started:
        if process.is_alive():
            process.kill()
        process.join(STOP_TIMEOUT_S)


@pytest.fixture
def spawn_event() -> Callable[[], Any]:
    """A multiprocessing Event that spawn workers can share."""
    return multiprocessing.get_context("spawn").Event


@pytest.fixture
def raw_socket(address: str) -> Iterator[Callable[[], zmq.Socket[Any]]]:
    """Make DEALER sockets connected to `address`; all are closed at the end."""
    context: zmq.Context[Any] = zmq.Context()
    sockets: list[zmq.Socket[Any]] = []

    def make() -> zmq.Socket[Any]:
        sock = context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(address)
        sockets.append(sock)
        return sock

    yield make
    for sock in sockets:
        sock.close(linger=0)
    context.term()
