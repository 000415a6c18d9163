"""Reader threads: queries on read-only WAL connections, beside the writer.

Each reader owns one connection and the cursors opened on it, so a paged query
(`fetch`) always returns to the thread that started it. Replies go back to the
I/O thread through an inproc PUSH socket, the only socket a reader touches.
"""

from __future__ import annotations

import itertools
import logging
import queue
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

import zmq
from micro_namedtuple_sqlite_persister import wire
from micro_namedtuple_sqlite_persister.errors import ProtocolError

from .handlers import Handlers
from .security import restrict_read_connection

log = logging.getLogger(__name__)

# (client identity, request id, op, args)
Job = tuple[bytes, bytes, str, list[Any]]


class Reader(threading.Thread):
    """One read-only connection and the cursors open on it."""

    def __init__(
        self,
        index: int,
        path: str,
        handlers: Handlers,
        context: zmq.Context[Any],
        reply_address: str,
        page_rows: int,
        cursor_idle_s: float,
        explain: Callable[[BaseException], BaseException],
    ) -> None:
        super().__init__(name=f"mnsp-reader-{index}", daemon=True)
        self.index = index
        self.jobs: queue.Queue[Job | None] = queue.Queue()
        self._path = path
        self._handlers = handlers
        self._context = context
        self._reply_address = reply_address
        self._page_rows = page_rows
        self._cursor_idle_s = cursor_idle_s
        self._explain = explain
        self._cursors: dict[str, tuple[sqlite3.Cursor, Any, bool, float]] = {}
        # Each counter has one writer thread, so no lock is needed.
        self.submitted = 0  # by the I/O thread
        self.done = 0  # by this reader

    @property
    def load(self) -> int:
        """Jobs queued or running on this reader."""
        return self.submitted - self.done

    def run(self) -> None:
        connection = sqlite3.connect(
            f"file:{self._path}?mode=ro", uri=True, isolation_level=None
        )
        connection.execute("PRAGMA query_only=ON")
        restrict_read_connection(connection)
        push = self._context.socket(zmq.PUSH)
        push.connect(self._reply_address)
        try:
            self._serve(connection, push)
        finally:
            push.close(linger=1000)
            connection.close()

    def _serve(self, connection: sqlite3.Connection, push: zmq.Socket[Any]) -> None:
        while True:
            try:
                job = self.jobs.get(timeout=self._cursor_idle_s / 2)
            except queue.Empty:
                self._close_idle_cursors()
                continue
            if job is None:
                return
            identity, request_id, op, args = job
            started = time.perf_counter()
            try:
                reply = wire.encode_reply(
                    request_id, self._handle(connection, op, args)
                )
            except Exception as exc:
                reply = wire.encode_error(request_id, self._explain(exc))
            push.send_multipart([identity, request_id, reply])
            self.done += 1
            log.debug("read op=%s ms=%.2f", op, (time.perf_counter() - started) * 1e3)

    def _handle(self, connection: sqlite3.Connection, op: str, args: list[Any]) -> Any:
        if op == "query":
            return self._query(connection, args)
        if op == "fetch":
            return self._fetch(args)
        if op == "close_cursor":
            self._cursors.pop(str(args[0]), None)
            return None
        return self._handlers.by_op[op](connection.cursor(), args)

    def _query(self, connection: sqlite3.Connection, args: list[Any]) -> list[Any]:
        """[cursor id or None, first page of rows, related rows or None]."""
        key, sql, params, is_deep, page_rows = args
        if not isinstance(sql, str) or not isinstance(params, list | dict):
            raise ProtocolError("query takes SQL text and an array or map of params")
        spec = self._handlers.spec(key) if is_deep else None
        cursor = connection.cursor().execute(sql, params)
        return self._page(
            cursor, spec, bool(is_deep), _page_size(page_rows, self._page_rows)
        )

    def _fetch(self, args: list[Any]) -> list[Any]:
        cursor_id, page_rows = args
        entry = self._cursors.pop(str(cursor_id), None)
        if entry is None:
            raise ProtocolError(
                f"cursor {cursor_id!r} is closed or expired (idle cursors close "
                f"after {self._cursor_idle_s:.0f} s); run the query again."
            )
        cursor, spec, is_deep, _ = entry
        return self._page(cursor, spec, is_deep, _page_size(page_rows, self._page_rows))

    def _page(
        self, cursor: sqlite3.Cursor, spec: Any, is_deep: bool, size: int
    ) -> list[Any]:
        rows = cursor.fetchmany(size)
        related = (
            self._handlers.load_related(cursor.connection.cursor(), spec, rows)
            if (is_deep and rows)
            else None
        )
        if len(rows) < size:
            cursor.close()
            return [None, rows, related]
        # Unguessable, so one client cannot read or close another's cursor.
        cursor_id = f"{self.index}:{secrets.token_hex(12)}"
        self._cursors[cursor_id] = (cursor, spec, is_deep, time.monotonic())
        return [cursor_id, rows, related]

    def _close_idle_cursors(self) -> None:
        cutoff = time.monotonic() - self._cursor_idle_s
        for cursor_id, (cursor, _, _, last_used) in list(self._cursors.items()):
            if last_used < cutoff:
                cursor.close()
                del self._cursors[cursor_id]


def _page_size(requested: Any, limit: int) -> int:
    if type(requested) is not int or requested < 1:
        return limit
    return min(requested, limit)


class ReaderPool:
    """Reader threads; queries go round-robin, fetches to the cursor's owner."""

    def __init__(self, readers: list[Reader]) -> None:
        self.readers = readers
        self._next = itertools.cycle(range(len(readers)))

    def start(self) -> None:
        for reader in self.readers:
            reader.start()

    def submit(self, job: Job) -> None:
        _, _, op, args = job
        if op in ("fetch", "close_cursor"):
            owner = str(args[0]).split(":", 1)[0] if args else ""
            index = (
                int(owner) if owner.isdigit() and int(owner) < len(self.readers) else 0
            )
        else:
            start = next(self._next)
            count = len(self.readers)
            index = min(
                range(count),
                key=lambda i: (self.readers[i].load, (i - start) % count),
            )
        self.readers[index].submitted += 1
        self.readers[index].jobs.put(job)

    def stop(self, timeout_s: float) -> None:
        """Let each reader finish its queued jobs, then end it."""
        for reader in self.readers:
            reader.jobs.put(None)
        deadline = time.monotonic() + timeout_s
        for reader in self.readers:
            reader.join(max(0.0, deadline - time.monotonic()))
