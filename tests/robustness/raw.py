"""Talking to the server below the client: raw frames on a DEALER socket.

Helpers shared by the bad-input and limit tests: build request frames by hand,
wait for replies, count the server's dropped-frame log lines and the rows on
disk (through a read-only connection, apart from the server).
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import msgpack
import zmq
from micro_namedtuple_sqlite_persister import wire

DROPPED_LINE = "WARNING micro_namedtuple_sqlite_persister.server.service: dropped frame"
_counter = itertools.count(1)


def new_request_id() -> bytes:
    return os.urandom(8) + next(_counter).to_bytes(8, "big")


def request_frame(
    op: Any,
    args: Any,
    options: Any = None,
    request_id: bytes | None = None,
) -> bytes:
    """One request frame as the client would build it, from any values."""
    message = [wire.PROTOCOL_VERSION, request_id or new_request_id(), op, args]
    return msgpack.packb(message + [options or {}], use_bin_type=True)  # type: ignore[no-any-return]


def receive_replies(
    sock: zmq.Socket[Any],
    timeout_s: float,
    until_id: bytes | None = None,
    max_count: int | None = None,
) -> list[tuple[bytes, bool, Any]]:
    """Replies that arrive within `timeout_s`; stop early at `until_id` or count."""
    replies: list[tuple[bytes, bool, Any]] = []
    deadline = time.monotonic() + timeout_s
    while (remaining := deadline - time.monotonic()) > 0:
        if not sock.poll(int(remaining * 1000) + 1, zmq.POLLIN):
            break
        reply = wire.decode_reply(sock.recv())
        replies.append(reply)
        if reply[0] == until_id or len(replies) == max_count:
            break
    return replies


def call(
    sock: zmq.Socket[Any], op: str, args: Any, timeout_s: float = 10.0, **options: Any
) -> tuple[bool, Any]:
    """Send one request and return (is_ok, payload) of its reply."""
    request_id = new_request_id()
    sock.send(request_frame(op, args, options, request_id))
    for reply_id, is_ok, payload in receive_replies(sock, timeout_s, request_id):
        if reply_id == request_id:
            return is_ok, payload
    raise AssertionError(f"no reply to {op} within {timeout_s} s")


def count_dropped(log_text: str) -> int:
    """How many frames the server's log says it dropped."""
    return log_text.count(DROPPED_LINE)


def table_counts(db_path: Path) -> dict[str, int]:
    """Rows per table (the server's own `_mnsp_` tables excluded), read-only."""
    connection = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        names = [
            name
            for (name,) in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE '\\_mnsp\\_%' ESCAPE '\\'"
            )
        ]
        return {
            name: connection.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
            for name in names
        }
    finally:
        connection.close()


def names_stored(db_path: Path, table: str = "Marker") -> list[str]:
    """Every name in `table`, duplicates included, read-only."""
    connection = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return [name for (name,) in connection.execute(f"SELECT name FROM {table}")]
    finally:
        connection.close()


def integrity_check(db_path: Path) -> list[str]:
    """The lines of `PRAGMA integrity_check`: ["ok"] for a sound file."""
    connection = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return [line for (line,) in connection.execute("PRAGMA integrity_check")]
    finally:
        connection.close()


class LogWatcher:
    """Reads what the server appended to its log since the last look."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0

    def new_text(self) -> str:
        with open(self.path, "rb") as log:
            log.seek(self.offset)
            data = log.read()
        self.offset += len(data)
        return data.decode(errors="replace")
