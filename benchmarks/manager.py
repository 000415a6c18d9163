"""The BaseManager contender: one process owns one sqlite3 connection.

This is what a Python user reaches for first to share one writer between
processes: `multiprocessing.managers.BaseManager` serving an object whose
`save` inserts a row and commits. The manager runs one thread per connected
client; a lock keeps them off the connection one at a time, as sqlite3 needs.
It listens on a Unix socket in a private temporary directory (the standard
library's default address on Linux), the same kind of local transport our
server uses over ipc.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from multiprocessing.managers import BaseManager
from typing import Any, NamedTuple

from .processes import context, ignore_interrupts
from .raw_sqlite import INSERT_SQL


class SqliteStore:
    """Saves rows on the manager's one connection, committing each one.

    The file and its table exist before the manager starts.
    """

    def __init__(self, path: str, synchronous: str) -> None:
        self._lock = threading.Lock()
        self._connection = sqlite3.connect(path, check_same_thread=False)
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute(f"PRAGMA synchronous={synchronous.upper()}")

    def save(self, name: str, date: str, score: float | None) -> int | None:
        """Insert one row and commit; its id. Called from the manager's threads."""
        with self._lock:
            cursor = self._connection.execute(INSERT_SQL, (name, date, score))
            self._connection.commit()
            return cursor.lastrowid


# The manager process's one store, made by its initializer.
_store: SqliteStore | None = None


def _open_store(path: str, synchronous: str) -> None:
    global _store
    ignore_interrupts()
    _store = SqliteStore(path, synchronous)


def _shared_store() -> SqliteStore:
    if _store is None:
        raise RuntimeError("the store manager started without its initializer.")
    return _store


class StoreManager(BaseManager):
    """Serves the one `SqliteStore` of its process as `store()`."""


StoreManager.register("store", callable=_shared_store)


class ManagerAddress(NamedTuple):
    address: str
    authkey: bytes


@contextlib.contextmanager
def running_store_manager(path: str, synchronous: str) -> Iterator[ManagerAddress]:
    """Start a manager process owning a connection to `path`; shut it down after."""
    authkey = os.urandom(16)
    manager = StoreManager(authkey=authkey, ctx=context())
    manager.start(initializer=_open_store, initargs=(path, synchronous))
    try:
        yield ManagerAddress(str(manager.address), authkey)
    finally:
        manager.shutdown()


def connect_store(address: str, authkey: bytes) -> Any:
    """A proxy to the manager's store, for one worker process."""
    manager = StoreManager(address=address, authkey=authkey)
    manager.connect()
    return manager.store()  # type: ignore[attr-defined]
