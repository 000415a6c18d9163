"""Fixtures for the service tests: a real server process on a real SQLite file.

Every process a test starts is stopped by a fixture's clean-up, also when the
test fails. Servers listen on ipc sockets in private temporary directories.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from micro_namedtuple_sqlite_persister import Engine
from micro_namedtuple_sqlite_persister.client import RemoteEngine, connect
from micro_namedtuple_sqlite_persister.server import ServerProcess

from .models import Athlete, League, Team

CLIENT_TIMEOUT_S = 20.0

StartServer = Callable[..., ServerProcess]


@pytest.fixture
def server_db(tmp_path: Path) -> Path:
    return tmp_path / "served.db"


@pytest.fixture
def start_server(server_db: Path) -> Iterator[StartServer]:
    """Start servers on `server_db` (options as ServerProcess); all stop at the end."""
    started: list[ServerProcess] = []

    def start(address: str | None = None, **options: Any) -> ServerProcess:
        server = ServerProcess(server_db, address, **options)
        started.append(server)
        return server.start()

    yield start
    for server in reversed(started):
        server.__exit__(None, None, None)


@pytest.fixture
def server(start_server: StartServer) -> ServerProcess:
    """A server with default options."""
    return start_server()


@pytest.fixture
def client(server: ServerProcess) -> Iterator[RemoteEngine]:
    """A client of `server`, closed after the test."""
    with connect(server.address, timeout=CLIENT_TIMEOUT_S) as engine:
        yield engine


@pytest.fixture
def other_client(server: ServerProcess) -> Iterator[RemoteEngine]:
    """A second, independent client of `server`."""
    with connect(server.address, timeout=CLIENT_TIMEOUT_S) as engine:
        yield engine


@pytest.fixture
def local(tmp_path: Path) -> Iterator[Engine]:
    """An in-process Engine on its own file, to compare the client with."""
    with Engine(str(tmp_path / "local.db")) as engine:
        yield engine


@pytest.fixture
def reader(server_db: Path, server: ServerProcess) -> Iterator[sqlite3.Connection]:
    """A read-only connection to the served file, apart from the server."""
    connection = sqlite3.connect(f"file:{server_db}?mode=ro", uri=True)
    yield connection
    connection.close()


def create_sports_tables(engine: Engine | RemoteEngine) -> None:
    for model in (League, Team, Athlete):
        engine.ensure_table_created(model)
