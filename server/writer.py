"""The writer: the only connection that writes, owned by the server's I/O thread.

Each write runs in its own savepoint inside the batch's transaction, so a failing
request rolls back alone. The I/O thread commits once per batch and only then
sends the replies (group commit): an acknowledged write is a committed write.

Every applied write is recorded in `_mnsp_applied` with its request id and reply,
in the same savepoint. A retried request (the reply was lost, not the write) gets
the recorded reply instead of being applied twice, also after a restart. The
record is looked up in the table, not kept in memory: at thousands of writes a
second, a window's worth of ids would grow the server by hundreds of megabytes.
Limit: ids are remembered for `dedupe_window_s`; a retry after that applies again.

A write lease (a client's `transaction()`) holds the transaction open across
requests of one client until it commits, rolls back, or goes silent too long.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from micro_namedtuple_sqlite_persister import wire
from micro_namedtuple_sqlite_persister.errors import TransactionError

from .handlers import Handlers

log = logging.getLogger(__name__)

APPLIED_TABLE = "_mnsp_applied"
PRUNE_INTERVAL_S = 30.0


@dataclass
class Lease:
    """An open transaction owned by one client's `transaction()` block."""

    token: bytes
    identity: bytes
    timeout_s: float
    expires_at: float

    def touch(self) -> None:
        self.expires_at = time.monotonic() + self.timeout_s


class Writer:
    """The write connection, its transaction, the lease and the applied-id record."""

    def __init__(
        self,
        path: str,
        handlers: Handlers,
        *,
        synchronous: str,
        dedupe_window_s: float,
    ) -> None:
        self.handlers = handlers
        self.connection = sqlite3.connect(path, isolation_level=None)
        self.cursor = self.connection.cursor()
        for pragma in (
            "journal_mode=WAL",
            f"synchronous={synchronous}",
            "foreign_keys=ON",
            "busy_timeout=5000",
        ):
            self.cursor.execute(f"PRAGMA {pragma}")
        self.cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {APPLIED_TABLE} (request_id BLOB PRIMARY "
            "KEY, reply BLOB NOT NULL, applied_at REAL NOT NULL) WITHOUT ROWID"
        )
        # Pruning by age every PRUNE_INTERVAL_S must not scan the whole record.
        self.cursor.execute(
            f"CREATE INDEX IF NOT EXISTS {APPLIED_TABLE}_at ON {APPLIED_TABLE} "
            "(applied_at)"
        )
        self.lease: Lease | None = None
        self.commits = 0
        self._dedupe_window_s = dedupe_window_s
        self._expired_tokens: OrderedDict[bytes, None] = OrderedDict()
        self._next_prune = 0.0

    # -- requests ----------------------------------------------------------------

    def write(self, request_id: bytes, op: str, args: list[Any]) -> Any:
        """Apply one write atomically, or return the reply it already got.

        The first write of a batch runs in the batch's fresh transaction, later
        ones in a savepoint each, so a failure undoes that request alone.
        A duplicate is noticed without a lookup on the common path: recording its
        id fails (primary key), or the write itself fails (a repeated delete);
        either way it is undone and answered from the record.
        """
        is_first = not self.connection.in_transaction
        self.cursor.execute("BEGIN IMMEDIATE" if is_first else "SAVEPOINT request")
        try:
            result = self.handlers.by_op[op](self.cursor, args)
            self.cursor.execute(
                f"INSERT INTO {APPLIED_TABLE} VALUES (?, ?, ?)",
                (request_id, wire.pack(result), time.time()),
            )
        except BaseException:
            self._undo(is_first)
            recorded = self._recorded_reply(request_id)
            if recorded is None:
                raise
            log.debug("duplicate request answered from the record op=%s", op)
            return wire.unpack(recorded)
        if not is_first:
            self.cursor.execute("RELEASE request")
        return result

    def _undo(self, is_first: bool) -> None:
        if is_first:
            self.cursor.execute("ROLLBACK")
        else:
            self.cursor.execute("ROLLBACK TO request")
            self.cursor.execute("RELEASE request")

    def _recorded_reply(self, request_id: bytes) -> bytes | None:
        """The reply recorded for `request_id`, committed or in this transaction."""
        row = self.cursor.execute(
            f"SELECT reply FROM {APPLIED_TABLE} WHERE request_id = ?", (request_id,)
        ).fetchone()
        return None if row is None else row[0]  # type: ignore[no-any-return]

    def read(self, op: str, args: list[Any]) -> Any:
        """A read on the write connection (it sees the open transaction's writes)."""
        return self.handlers.by_op[op](self.cursor, args)

    def commit(self) -> None:
        """Commit the open transaction, if any. On failure roll back and re-raise."""
        if not self.connection.in_transaction:
            return
        try:
            self.cursor.execute("COMMIT")
        except sqlite3.Error:
            self.rollback()
            raise
        self.commits += 1
        self._prune_applied()

    def rollback(self) -> None:
        """Roll back the open transaction, with the ids it recorded."""
        if self.connection.in_transaction:
            self.cursor.execute("ROLLBACK")

    # -- leases ------------------------------------------------------------------

    def begin_lease(self, token: bytes, identity: bytes, timeout_s: float) -> None:
        """Start a client's transaction. The caller committed the batch before."""
        assert self.lease is None and not self.connection.in_transaction
        self.cursor.execute("BEGIN IMMEDIATE")
        self.lease = Lease(token, identity, timeout_s, 0.0)
        self.lease.touch()

    def end_lease(self, *, is_commit: bool) -> None:
        if is_commit:
            self.commit()
        else:
            self.rollback()
        self.lease = None

    def check_lease(self, token: Any) -> None:
        """Raise TransactionError unless `token` is the lease being held."""
        if self.lease is not None and token == self.lease.token:
            self.lease.touch()
            return
        if token in self._expired_tokens:
            raise TransactionError(
                "this transaction was rolled back: its write lease expired after "
                "the client sent nothing for the lease timeout. Keep transactions "
                "short, or start the server with a longer --lease-timeout."
            )
        raise TransactionError(
            "this transaction is no longer open on the server (was it restarted?); "
            "its writes were rolled back. Run the transaction again."
        )

    def expire_lease_if_due(self) -> bool:
        """Roll back a lease whose client went silent; True if one expired."""
        if self.lease is None or time.monotonic() < self.lease.expires_at:
            return False
        log.warning(
            "write lease expired, rolled back client=%s timeout_s=%.1f",
            self.lease.identity.hex(),
            self.lease.timeout_s,
        )
        self._expired_tokens[self.lease.token] = None
        while len(self._expired_tokens) > 1000:
            self._expired_tokens.popitem(last=False)
        self.end_lease(is_commit=False)
        return True

    # -- upkeep ------------------------------------------------------------------

    def _prune_applied(self) -> None:
        now = time.time()
        if now < self._next_prune:
            return
        self._next_prune = now + PRUNE_INTERVAL_S
        cutoff = now - self._dedupe_window_s
        self.cursor.execute(
            f"DELETE FROM {APPLIED_TABLE} WHERE applied_at < ?", (cutoff,)
        )

    def close(self) -> None:
        if self.lease is not None:
            self.end_lease(is_commit=False)
        self.commit()
        self.connection.close()
