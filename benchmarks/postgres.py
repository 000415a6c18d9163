"""A throw-away PostgreSQL cluster for the many-writers group, when one can be had.

`throwaway_cluster()` runs initdb in a new temporary directory, starts
`postgres` on a free 127.0.0.1 port (its Unix socket in the same directory),
yields the connection string, and on leaving stops the server (fast shutdown,
then SIGKILL) and deletes the directory. PostgreSQL refuses to run as root, so
as root it runs as the `postgres` user, or `nobody` if there is none.

It raises PostgresUnavailableError, saying why, when the driver (psycopg) or
the server binaries are missing or the cluster does not come up; the caller
skips the contender and says so. fsync stays on; durability per connection is
set with `synchronous_commit` (see `dsn_for`).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from .processes import free_tcp_port

SEARCH_DIRS = ["/usr/local/bin", "/usr/lib/postgresql/*/bin", "/usr/bin"]
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
DATABASE_USER = "bench"
SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "on",
    "synchronous_commit": "on",
    "max_connections": "60",
}
CREATE_TABLE_SQL = (
    "DROP TABLE IF EXISTS mymodel; CREATE TABLE mymodel (id bigserial PRIMARY KEY, "
    "name text NOT NULL, date timestamp NOT NULL, score double precision)"
)


class PostgresUnavailableError(Exception):
    """No PostgreSQL for this run; the message says why and what to install."""


class PostgresCluster(NamedTuple):
    """A running throw-away cluster reachable on 127.0.0.1:port."""

    port: int
    directory: str

    def dsn_for(self, durability: str) -> str:
        """Connection string: full = synchronous_commit on, normal = off."""
        commit = "on" if durability == "full" else "off"
        return (
            f"host=127.0.0.1 port={self.port} user={DATABASE_USER} dbname=postgres "
            f"options='-c synchronous_commit={commit}'"
        )

    def reset_table(self) -> None:
        """An empty mymodel table, its ids starting at 1 again."""
        import psycopg

        with psycopg.connect(self.dsn_for("full"), autocommit=True) as connection:
            connection.execute(CREATE_TABLE_SQL)

    def count_rows(self) -> int:
        import psycopg

        with psycopg.connect(self.dsn_for("full"), autocommit=True) as connection:
            row = connection.execute("SELECT count(*) FROM mymodel").fetchone()
            assert row is not None
            return int(row[0])


def find_binary(name: str) -> str | None:
    """The path of a PostgreSQL program in the usual places, or None."""
    for pattern in SEARCH_DIRS:
        for directory in sorted(glob.glob(pattern), reverse=True):
            path = Path(directory) / name
            if path.is_file() and os.access(path, os.X_OK):
                return str(path)
    return shutil.which(name)


def _require_driver() -> None:
    try:
        import psycopg  # noqa: F401
    except ImportError as exc:
        raise PostgresUnavailableError(
            "the PostgreSQL driver psycopg is not installed; install it with "
            "`pip install -e '.[bench]'` to include PostgreSQL."
        ) from exc


def _require_binaries() -> tuple[str, str]:
    initdb, postgres = find_binary("initdb"), find_binary("postgres")
    if initdb is None or postgres is None:
        raise PostgresUnavailableError(
            "the PostgreSQL server programs (initdb, postgres) were not found in "
            f"{', '.join(SEARCH_DIRS)} or on PATH; install them (e.g. the "
            "postgresql package) to include PostgreSQL."
        )
    return initdb, postgres


def _run_as() -> str | None:
    """The user to run PostgreSQL as: None means ourselves (we are not root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise PostgresUnavailableError(
        "running as root, and neither a 'postgres' nor a 'nobody' user exists to "
        "run PostgreSQL as (it refuses root); create one to include PostgreSQL."
    )


def _init_cluster(initdb: str, data: Path, user: str | None, log: Path) -> None:
    command = [initdb, "-D", str(data), "-U", DATABASE_USER, "-A", "trust"]
    command += ["-E", "UTF8", "--no-sync"]
    with open(log, "ab") as output:
        completed = subprocess.run(
            command, user=user, cwd=data.parent, stdout=output, stderr=output
        )
    if completed.returncode != 0:
        raise PostgresUnavailableError(
            f"initdb failed with code {completed.returncode}; its output:\n"
            + log.read_text(errors="replace")[-2000:]
        )


def _start_server(
    postgres: str, data: Path, port: int, user: str | None, log: Path
) -> subprocess.Popen[bytes]:
    command = [postgres, "-D", str(data), "-p", str(port), "-k", str(data.parent)]
    for name, value in SERVER_SETTINGS.items():
        command += ["-c", f"{name}={value}"]
    with open(log, "ab") as output:
        # A session of its own: Ctrl-C reaches only us, and we stop it in order.
        return subprocess.Popen(
            command,
            user=user,
            cwd=data.parent,
            stdout=output,
            stderr=output,
            start_new_session=True,
        )


def _wait_until_ready(
    cluster: PostgresCluster, server: subprocess.Popen[bytes], log: Path
) -> None:
    import psycopg

    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            break
        try:
            psycopg.connect(cluster.dsn_for("full"), connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            time.sleep(0.1)
    raise PostgresUnavailableError(
        f"PostgreSQL did not accept connections within {START_TIMEOUT_S:g} s; "
        f"its log:\n{log.read_text(errors='replace')[-2000:]}"
    )


def _stop_server(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        server.send_signal(signal.SIGINT)  # PostgreSQL's "fast" shutdown
    try:
        server.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


@contextlib.contextmanager
def throwaway_cluster() -> Iterator[PostgresCluster]:
    """A fresh cluster for this run; PostgresUnavailableError if none can start."""
    _require_driver()
    initdb, postgres = _require_binaries()
    user = _run_as()
    directory = Path(tempfile.mkdtemp(prefix="mnsp-bench-pg-"))
    try:
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(directory, entry.pw_uid, entry.pw_gid)
        data, log = directory / "data", directory / "postgres.log"
        _init_cluster(initdb, data, user, log)
        cluster = PostgresCluster(free_tcp_port(), str(directory))
        server = _start_server(postgres, data, cluster.port, user, log)
        try:
            _wait_until_ready(cluster, server, log)
            yield cluster
        finally:
            _stop_server(server)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
