"""What the worker processes do: the rows, and each contender's save and find.

Every opener is a context manager yielding `operation(index)`: save row `index`
of this worker, or find the row picked for `index`. Rows and picked ids depend
only on (worker, index), so every contender handles the same rows. Each
operation starts from a `MyModel` row and does what that contender's user
would write: our client takes the row itself; the hand-written ones turn the
datetime into ISO text (SQLite) or pass it to the driver (PostgreSQL).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
from collections.abc import Iterator

from micro_namedtuple_sqlite_persister.client import connect

from .inprocess import MyModel
from .processes import Operation
from .raw_sqlite import CREATE_MYMODEL_SQL, INSERT_SQL, SELECT_BY_ID_SQL

POSTGRES_INSERT_SQL = (
    "INSERT INTO mymodel (name, date, score) VALUES (%s, %s, %s) RETURNING id"
)
# Long enough that a busy server or a locked file shows up as latency, and an
# error only when something is really wrong.
CLIENT_TIMEOUT_S = 30.0
BUSY_TIMEOUT_S = 5.0
EPOCH = dt.datetime(2025, 1, 1, 9, 30)


def make_row(worker: int, index: int) -> MyModel:
    """Row `index` of `worker`: unsaved, the same for every contender."""
    return MyModel(
        None,
        f"w{worker:02d}-{index:07d}",
        EPOCH + dt.timedelta(seconds=index, microseconds=worker),
        (index * 37 + worker) % 1000 / 10,
    )


def pick_id(worker: int, index: int, max_id: int) -> int:
    """A spread-out id in 1..max_id for find number `index` of `worker`."""
    return (index * 2_654_435_761 + worker * 40_503) % max_id + 1


def create_sqlite_table(path: str) -> None:
    """A new WAL file with the MyModel table exactly as the Engine creates it."""
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(CREATE_MYMODEL_SQL)
        connection.commit()


def count_sqlite_rows(path: str) -> int:
    """Rows committed in the file's MyModel table (a WAL reader; safe while in use)."""
    uri = f"file:{path}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as connection:
        count: int = connection.execute("SELECT count(*) FROM MyModel").fetchone()[0]
        return count


# -- our server ---------------------------------------------------------------------


@contextlib.contextmanager
def server_saver(address: str, worker: int) -> Iterator[Operation]:
    """Each operation saves one row through our client (one request, one reply)."""
    engine = connect(address, timeout=CLIENT_TIMEOUT_S)
    try:
        yield lambda index: engine.save(make_row(worker, index))
    finally:
        engine.close()


@contextlib.contextmanager
def server_finder(address: str, worker: int, max_id: int) -> Iterator[Operation]:
    """Each operation finds one row by id through our client."""
    engine = connect(address, timeout=CLIENT_TIMEOUT_S)
    try:
        yield lambda index: engine.find(MyModel, pick_id(worker, index, max_id))
    finally:
        engine.close()


# -- the SQLite file, directly ------------------------------------------------------


def _open_writer(path: str, synchronous: str) -> sqlite3.Connection:
    connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(f"PRAGMA synchronous={synchronous.upper()}")
    return connection


@contextlib.contextmanager
def direct_saver(path: str, synchronous: str, worker: int) -> Iterator[Operation]:
    """Each operation inserts one row on this worker's own connection and commits."""
    connection = _open_writer(path, synchronous)
    cursor = connection.cursor()

    def save(index: int) -> int | None:
        _, name, date, score = make_row(worker, index)
        cursor.execute(INSERT_SQL, (name, date.isoformat(), score))
        connection.commit()
        return cursor.lastrowid

    try:
        yield save
    finally:
        connection.close()


@contextlib.contextmanager
def direct_finder(path: str, worker: int, max_id: int) -> Iterator[Operation]:
    """Each operation reads one row by id on a read-only connection to the file."""
    uri = f"file:{path}?mode=ro"
    connection = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S)
    cursor = connection.cursor()
    fromisoformat = dt.datetime.fromisoformat

    def find(index: int) -> MyModel:
        row_id, name, date, score = cursor.execute(
            SELECT_BY_ID_SQL, (pick_id(worker, index, max_id),)
        ).fetchone()
        return MyModel(row_id, name, fromisoformat(date), score)

    try:
        yield find
    finally:
        connection.close()


# -- the transport alone ----------------------------------------------------------


@contextlib.contextmanager
def echo_saver(address: str, worker: int) -> Iterator[Operation]:
    """Each operation is a round trip to a pyzmq echo of a request like our save's.

    Nothing is stored: this is the ceiling any server behind pyzmq could reach.
    """
    import msgpack
    import zmq

    zmq_context = zmq.Context()
    sock = zmq_context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, int(CLIENT_TIMEOUT_S * 1000))
    sock.connect(address)
    request_id = bytes(16)
    options = {"timeout_ms": int(CLIENT_TIMEOUT_S * 1000)}

    def save(index: int) -> int:
        _, name, date, score = make_row(worker, index)
        values = [name, date.isoformat(), score]
        request = [1, request_id, "save", ["MyModel", None, values], options]
        sock.send(msgpack.packb(request, use_bin_type=True))
        msgpack.unpackb(sock.recv(), raw=False)
        return index

    try:
        yield save
    finally:
        sock.close(linger=0)
        zmq_context.term()


# -- a BaseManager process owning one connection ---------------------------------


@contextlib.contextmanager
def manager_saver(address: str, authkey: bytes, worker: int) -> Iterator[Operation]:
    """Each operation is one call to the manager's store: insert, commit, id."""
    from .manager import connect_store

    store = connect_store(address, authkey)

    def save(index: int) -> int:
        _, name, date, score = make_row(worker, index)
        row_id: int = store.save(name, date.isoformat(), score)
        return row_id

    yield save


# -- PostgreSQL ---------------------------------------------------------------------


@contextlib.contextmanager
def postgres_saver(dsn: str, worker: int) -> Iterator[Operation]:
    """Each operation is `INSERT ... RETURNING id` on an autocommit connection."""
    import psycopg

    connection = psycopg.connect(dsn, autocommit=True)
    cursor = connection.cursor()

    def save(index: int) -> int:
        _, name, date, score = make_row(worker, index)
        cursor.execute(POSTGRES_INSERT_SQL, (name, date, score), prepare=True)
        row = cursor.fetchone()
        assert row is not None
        return int(row[0])

    try:
        yield save
    finally:
        connection.close()
