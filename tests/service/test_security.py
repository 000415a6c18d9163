"""Who the server serves: CURVE keys, the read-only role, bind checks, socket modes.

Servers here listen on 127.0.0.1 or on ipc sockets. Only the --insecure test
binds 0.0.0.0, sends nothing to it (its readiness ping goes to an ipc socket),
and stops at once.
"""

from __future__ import annotations

import os
import pickle
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from micro_namedtuple_sqlite_persister import (
    AccessDeniedError,
    KeyFileError,
    PersisterError,
    ServerTimeoutError,
)
from micro_namedtuple_sqlite_persister.client import CurveKeys, RemoteEngine, connect
from micro_namedtuple_sqlite_persister.client.transport import Transport
from micro_namedtuple_sqlite_persister.keys import (
    create_key_pair,
    load_key_pair,
    load_public_key,
)
from micro_namedtuple_sqlite_persister.server import ServerProcess
from micro_namedtuple_sqlite_persister.server.service import check_bind_addresses

from .conftest import StartServer
from .models import Counter

SERVER_MODULE = "micro_namedtuple_sqlite_persister.server"
KEYGEN_MODULE = "micro_namedtuple_sqlite_persister.server.keygen"
REFUSED_CLIENT_TIMEOUT_S = 1.5
CLIENT_TIMEOUT_S = 10.0


@dataclass
class Keys:
    """A server pair, a read-write, a read-only and an unknown client pair."""

    root: Path
    server_secret: Path
    server_public: Path
    allowed_dir: Path
    read_only_dir: Path
    writer: CurveKeys
    reader: CurveKeys
    stranger: CurveKeys

    def server_options(self) -> dict[str, Any]:
        return {
            "curve_secret_key": self.server_secret,
            "allowed_keys": self.allowed_dir,
            "read_only_keys": self.read_only_dir,
            "curve": self.writer,
        }


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    """Key pairs as a user makes them: keygen, then public keys copied to the server."""
    root = tmp_path / "keys"
    server_public, server_secret = create_key_pair(root / "server", "server")
    allowed_dir = root / "allowed"
    read_only_dir = root / "read-only"

    def client(name: str, server_dir: Path | None) -> CurveKeys:
        public, secret = create_key_pair(root / "clients", name)
        if server_dir is not None:
            server_dir.mkdir(exist_ok=True)
            shutil.copy(public, server_dir / public.name)
        return CurveKeys(secret, server_public)

    return Keys(
        root,
        server_secret,
        server_public,
        allowed_dir,
        read_only_dir,
        writer=client("writer", allowed_dir),
        reader=client("reader", read_only_dir),
        stranger=client("stranger", None),
    )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def curve_server(start_server: StartServer, keys: Keys) -> ServerProcess:
    """A CURVE server on a loopback TCP port with the `keys` fixture's clients."""
    address = f"tcp://127.0.0.1:{free_port()}"
    return start_server(address, **keys.server_options())


def wait_for_log(server: ServerProcess, text: str, timeout_s: float = 5.0) -> str:
    """The server's log once it shows `text`, or after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        log = server.read_log()
        if text in log:
            return log
        time.sleep(0.1)
    return server.read_log()


def line_with(log: str, text: str) -> str:
    """The first log line that contains `text`, or "" if none does."""
    return next((line for line in log.splitlines() if text in line), "")


def public_key_of(keys: CurveKeys) -> str:
    return load_key_pair(keys.client_secret_file)[0].decode("ascii")


def secret_key_of(path: str | os.PathLike[str]) -> str:
    return load_key_pair(path)[1].decode("ascii")


def raw_query(server: ServerProcess, curve: CurveKeys | None, sql: str) -> Any:
    """Send a `query` op as is, past the client's routing of SQL to execute."""
    socket_keys = None if curve is None else curve.load()
    transport = Transport(server.address, CLIENT_TIMEOUT_S, socket_keys)
    try:
        return transport.request("query", [None, sql, [], False, None])
    finally:
        transport.close()


# -- admitted and refused keys ----------------------------------------------------


@pytest.mark.timeout(60)
def test_client_with_allowed_key_saves_and_finds(
    curve_server: ServerProcess, keys: Keys
) -> None:
    with connect(
        curve_server.address, timeout=CLIENT_TIMEOUT_S, curve=keys.writer
    ) as engine:
        engine.ensure_table_created(Counter)
        saved = engine.save(Counter(None, 7))

        assert engine.find(Counter, saved.id) == saved
    assert "curve on server_key=" in curve_server.read_log()


@pytest.mark.timeout(60)
def test_client_with_unknown_key_times_out_and_server_logs_its_public_key(
    curve_server: ServerProcess, keys: Keys
) -> None:
    started = time.monotonic()
    with connect(
        curve_server.address, timeout=REFUSED_CLIENT_TIMEOUT_S, curve=keys.stranger
    ) as stranger:
        with pytest.raises(ServerTimeoutError):
            stranger.ping()
    elapsed = time.monotonic() - started

    expected = f"refused client key={public_key_of(keys.stranger)}"
    log = wait_for_log(curve_server, expected)
    assert elapsed < REFUSED_CLIENT_TIMEOUT_S + 2.0
    assert "WARNING" in line_with(log, expected)
    assert "reason=unknown key" in line_with(log, expected)
    for secret_file in (keys.stranger.client_secret_file, keys.server_secret):
        assert secret_key_of(secret_file) not in log


@pytest.mark.timeout(60)
def test_client_without_keys_times_out_and_server_logs_the_refusal(
    curve_server: ServerProcess,
) -> None:
    started = time.monotonic()
    with connect(curve_server.address, timeout=REFUSED_CLIENT_TIMEOUT_S) as anonymous:
        with pytest.raises(ServerTimeoutError):
            anonymous.ping()
    elapsed = time.monotonic() - started

    expected = f"refused client endpoint={curve_server.address}"
    assert elapsed < REFUSED_CLIENT_TIMEOUT_S + 2.0
    assert expected in wait_for_log(curve_server, expected)


@pytest.mark.timeout(60)
def test_client_with_another_servers_public_key_times_out(
    curve_server: ServerProcess, keys: Keys
) -> None:
    other_public, _ = create_key_pair(keys.root / "other-server", "server")
    misdirected = CurveKeys(keys.writer.client_secret_file, other_public)

    with connect(
        curve_server.address, timeout=REFUSED_CLIENT_TIMEOUT_S, curve=misdirected
    ) as client:
        with pytest.raises(ServerTimeoutError):
            client.ping()

    expected = f"refused client endpoint={curve_server.address}"
    assert expected in wait_for_log(curve_server, expected)


@pytest.mark.timeout(60)
def test_engine_pickled_with_curve_keys_carries_paths_not_secrets(
    curve_server: ServerProcess, keys: Keys
) -> None:
    engine = connect(curve_server.address, timeout=CLIENT_TIMEOUT_S, curve=keys.writer)

    pickled = pickle.dumps(engine)
    copy = pickle.loads(pickled)

    assert secret_key_of(keys.writer.client_secret_file).encode() not in pickled
    assert isinstance(copy, RemoteEngine) and copy.curve == keys.writer
    assert copy.ping()["pid"] == curve_server.pid
    copy.close()
    engine.close()


def test_connect_with_a_public_key_file_as_client_key_fails_at_once(
    keys: Keys,
) -> None:
    wrong = CurveKeys(keys.server_public, keys.server_public)

    with pytest.raises(KeyFileError, match="holds no secret key"):
        connect("tcp://127.0.0.1:1", curve=wrong)


# -- the read-only role ---------------------------------------------------------


@pytest.fixture
def read_only_client(
    curve_server: ServerProcess, keys: Keys
) -> tuple[RemoteEngine, Counter]:
    """A read-only client of a server whose Counter table holds one row."""
    with connect(
        curve_server.address, timeout=CLIENT_TIMEOUT_S, curve=keys.writer
    ) as writer:
        writer.ensure_table_created(Counter)
        saved = writer.save(Counter(None, 1))
    return connect(
        curve_server.address, timeout=CLIENT_TIMEOUT_S, curve=keys.reader
    ), saved


@pytest.mark.timeout(60)
def test_read_only_key_can_ping_find_and_query(
    read_only_client: tuple[RemoteEngine, Counter],
) -> None:
    engine, saved = read_only_client
    with engine:
        assert engine.ping()["protocol"] >= 1
        assert engine.find(Counter, saved.id) == saved
        assert engine.find_by(Counter, count=1) == saved
        assert list(engine.query(Counter, "SELECT * FROM Counter")) == [saved]


WRITES = {
    "save": lambda engine, row: engine.save(Counter(None, 2)),
    "update": lambda engine, row: engine.save(row._replace(count=5)),
    "save_many": lambda engine, row: engine.save_many([Counter(None, 3)]),
    "delete": lambda engine, row: engine.delete(row),
    "ensure_table": lambda engine, row: engine.ensure_table_created(Counter),
    "insert_sql": lambda engine, row: engine.query(
        Counter, "INSERT INTO Counter (count) VALUES (4) RETURNING *"
    ),
    "with_insert_sql": lambda engine, row: engine.query(
        Counter, "WITH n AS (SELECT 6) INSERT INTO Counter (count) SELECT * FROM n"
    ),
    "drop_table_sql": lambda engine, row: engine.query(Counter, "DROP TABLE Counter"),
    "transaction": lambda engine, row: engine.transaction().__enter__(),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("action", list(WRITES.values()), ids=list(WRITES))
def test_read_only_key_is_refused_every_write(
    read_only_client: tuple[RemoteEngine, Counter], server_db: Path, action: Any
) -> None:
    engine, saved = read_only_client
    with engine:
        with pytest.raises(AccessDeniedError, match="this client's key is read-only"):
            action(engine, saved)

        assert list(engine.query(Counter, "SELECT * FROM Counter")) == [saved]


@pytest.mark.timeout(60)
def test_read_only_key_is_refused_attach_both_as_sql_and_as_raw_query(
    read_only_client: tuple[RemoteEngine, Counter],
    curve_server: ServerProcess,
    keys: Keys,
    tmp_path: Path,
) -> None:
    engine, _ = read_only_client
    target = tmp_path / "attached.db"
    attach = f"ATTACH DATABASE '{target}' AS other"

    with engine:
        with pytest.raises(AccessDeniedError, match="read-only"):
            engine.query(Counter, attach)
    with pytest.raises(AccessDeniedError, match="ATTACH"):
        raw_query(curve_server, keys.reader, f"  /* comment */ {attach.lower()}")

    assert not target.exists()


@pytest.mark.timeout(60)
def test_reader_connections_refuse_attach_and_query_only_off_for_any_client(
    server: ServerProcess, tmp_path: Path
) -> None:
    target = tmp_path / "attached.db"

    with pytest.raises(AccessDeniedError, match="ATTACH"):
        raw_query(server, None, f"ATTACH '{target}' AS other")
    with pytest.raises(AccessDeniedError, match="query_only"):
        raw_query(server, None, "PRAGMA query_only = 0")

    assert not target.exists()


# -- where the server listens -----------------------------------------------------


@pytest.mark.timeout(60)
def test_tcp_bind_reachable_from_other_hosts_without_curve_refuses_to_start(
    server_db: Path,
) -> None:
    address = f"tcp://0.0.0.0:{free_port('0.0.0.0')}"

    result = subprocess.run(
        [sys.executable, "-m", SERVER_MODULE, str(server_db), "--bind", address],
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode == 2
    assert f"refusing to listen on {address}" in result.stderr
    assert "--curve-secret-key" in result.stderr and "--insecure" in result.stderr


@pytest.mark.timeout(60)
def test_tcp_bind_reachable_from_other_hosts_with_insecure_starts_with_a_warning(
    start_server: StartServer,
) -> None:
    address = f"tcp://0.0.0.0:{free_port('0.0.0.0')}"

    # The readiness ping goes to the ipc address; nothing is sent to 0.0.0.0.
    server = start_server(None, bind=address, insecure=True)
    exit_code = server.stop()

    log = server.read_log()
    assert exit_code == 0
    assert f"listening address={address}" in log
    assert "WARNING" in line_with(log, "--insecure: serving without authentication")


def test_bind_check_allows_any_tcp_address_once_curve_is_on() -> None:
    outside = ["tcp://0.0.0.0:5555", "tcp://*:5555", "tcp://192.0.2.1:5555"]

    check_bind_addresses(outside, is_insecure=False, is_authenticated=True)
    for address in outside:
        with pytest.raises(PersisterError, match="refusing to listen"):
            check_bind_addresses([address], is_insecure=False)


@pytest.mark.timeout(60)
def test_ipc_socket_file_is_created_with_mode_0600(server: ServerProcess) -> None:
    path = server.address.removeprefix("ipc://")

    assert os.stat(path).st_mode & 0o777 == 0o600


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"allowed_keys": "DIR"}, "need --curve-secret-key"),
        ({"curve_secret_key": "SECRET"}, "needs --allowed-keys or --read-only-keys"),
        (
            {"curve_secret_key": "SECRET", "allowed_keys": "MISSING"},
            "does not exist",
        ),
        (
            {"curve_secret_key": "PUBLIC", "allowed_keys": "DIR"},
            "holds no secret key",
        ),
        (
            {
                "curve_secret_key": "SECRET",
                "allowed_keys": "DIR",
                "read_only_keys": "DIR",
            },
            "either read-write",
        ),
    ],
    ids=[
        "keys_without_secret",
        "secret_without_keys",
        "missing_dir",
        "public_as_secret",
        "key_in_both_roles",
    ],
)
def test_server_with_inconsistent_curve_options_refuses_to_start(
    server_db: Path, keys: Keys, options: dict[str, str], message: str
) -> None:
    paths = {
        "DIR": keys.allowed_dir,
        "SECRET": keys.server_secret,
        "PUBLIC": keys.server_public,
        "MISSING": keys.root / "missing",
    }
    command = [sys.executable, "-m", SERVER_MODULE, str(server_db)]
    for name, value in options.items():
        command += ["--" + name.replace("_", "-"), str(paths[value])]

    result = subprocess.run(command, capture_output=True, text=True, timeout=30)

    assert result.returncode == 2
    assert "cannot start" in result.stderr and message in result.stderr


# -- keygen ---------------------------------------------------------------------


def test_keygen_writes_a_public_key_and_a_private_secret_key(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", KEYGEN_MODULE, str(tmp_path / "keys"), "worker-1"],
        capture_output=True,
        text=True,
        timeout=30,
    )

    public = tmp_path / "keys" / "worker-1.key"
    secret = tmp_path / "keys" / "worker-1.key_secret"
    assert result.returncode == 0, result.stderr
    assert str(public) in result.stdout and str(secret) in result.stdout
    assert os.stat(secret).st_mode & 0o777 == 0o600
    assert load_public_key(public) == load_key_pair(secret)[0]
    assert "secret-key" not in public.read_text()
    assert sorted(os.listdir(tmp_path / "keys")) == [
        "worker-1.key",
        "worker-1.key_secret",
    ]


def test_keygen_refuses_to_overwrite_an_existing_pair(tmp_path: Path) -> None:
    create_key_pair(tmp_path, "server")
    before = (tmp_path / "server.key_secret").read_bytes()

    result = subprocess.run(
        [sys.executable, "-m", KEYGEN_MODULE, str(tmp_path), "server"],
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode == 2
    assert "already exists" in result.stderr
    assert (tmp_path / "server.key_secret").read_bytes() == before
