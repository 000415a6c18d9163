"""The writer: the only connection that writes, owned by the server's I/O thread.

A batch's writes share one transaction; the I/O thread commits it once and only
then sends the replies (group commit): an acknowledged write is a committed write.
A failing request rolls back alone: multi-statement writes run in a savepoint,
and a single statement that fails undoes only itself (SQLite statement
atomicity), so plain saves and deletes need no savepoint.

The replies of a batch's writes are recorded in `_mnsp_applied_batches`, one row
per commit keyed by the commit time (µs), written in the same transaction: the
record commits exactly when the writes do, and costs one appended row (one page)
per commit instead of an indexed row per write. A client that gets no reply
re-sends the request with the same id, marked as a re-send with the time since
its first send; only then is the record searched, back over that time (at most
`dedupe_window_s`), and a write found there is answered from it instead of being
applied twice, also after a server restart. Rows older than the window are pruned.

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

APPLIED_TABLE = "_mnsp_applied_batches"
# Before 2026-12: one indexed row per write. Dropped at start (see Writer).
OLD_APPLIED_TABLE = "_mnsp_applied"
PRUNE_INTERVAL_S = 30.0
# Ops that run one statement: on failure SQLite undoes the statement alone.
SINGLE_STATEMENT_OPS = frozenset({"save", "delete"})
# Slack on the client's time since its first send: clocks, queueing, restarts.
RESEND_SEARCH_MARGIN_S = 5.0


@dataclass
class Lease:
    """An open transaction owned by one client's `transaction()` block."""

    token: bytes
    identity: bytes
    timeout_s: float
    expires_at: float

    def touch(self) -> None:
        self.expires_at = time.monotonic() + self.timeout_s


class TransactionLostError(Exception):
    """The open transaction was rolled back whole: a failed COMMIT, or SQLite
    undoing it after an error such as disk full. `lost` are the request ids of
    the writes that had been applied in it; `cause` is the error."""

    def __init__(self, cause: BaseException, lost: set[bytes]) -> None:
        super().__init__(f"the transaction was rolled back: {cause}")
        self.cause = cause
        self.lost = lost


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
            f"CREATE TABLE IF NOT EXISTS {APPLIED_TABLE} (committed_us INTEGER "
            "PRIMARY KEY, replies BLOB NOT NULL)"
        )
        # Its ids are older than any client still re-sending after an upgrade.
        self.cursor.execute(f"DROP TABLE IF EXISTS {OLD_APPLIED_TABLE}")
        self.lease: Lease | None = None
        self.commits = 0
        self._dedupe_window_s = dedupe_window_s
        self._expired_tokens: OrderedDict[bytes, None] = OrderedDict()
        self._next_prune = 0.0
        # [request_id, result] of each write in the open transaction.
        self._applied: list[list[Any]] = []
        # Keys only grow, even when the wall clock steps back.
        last = self.cursor.execute(f"SELECT max(committed_us) FROM {APPLIED_TABLE}")
        self._last_commit_us: int = last.fetchone()[0] or 0

    # -- requests ----------------------------------------------------------------

    def write(self, request_id: bytes, op: str, args: list[Any]) -> Any:
        """Apply one write atomically within the open (or a new) transaction.

        The first write of a batch runs in the batch's fresh transaction, later
        multi-statement ones in a savepoint each, so a failure undoes that
        request alone. Raises TransactionLostError if SQLite rolled back the
        whole transaction (disk full, I/O error): the batch's writes are gone.
        """
        is_first = not self.connection.in_transaction
        is_savepoint = not is_first and op not in SINGLE_STATEMENT_OPS
        if is_first:
            self.cursor.execute("BEGIN IMMEDIATE")
        elif is_savepoint:
            self.cursor.execute("SAVEPOINT request")
        try:
            result = self.handlers.by_op[op](self.cursor, args)
        except BaseException as exc:
            if not is_first and not self.connection.in_transaction:
                raise TransactionLostError(exc, self._forget_applied()) from exc
            if is_first:
                self.rollback()  # unless SQLite rolled it back already
            elif is_savepoint:
                self.cursor.execute("ROLLBACK TO request")
                self.cursor.execute("RELEASE request")
            raise
        if is_savepoint:
            self.cursor.execute("RELEASE request")
        self._applied.append([request_id, result])
        return result

    def applied_result(
        self, request_id: bytes, since_first_send_s: float
    ) -> tuple[bool, Any]:
        """(True, result) if `request_id` was applied already, else (False, None).

        For a re-sent request: looks in the open transaction, then in the record
        back over the time the client says it has been re-sending (plus a
        margin, at most the dedupe window), newest first.
        """
        for recorded_id, result in self._applied:
            if recorded_id == request_id:
                return True, result
        search_s = min(
            since_first_send_s + RESEND_SEARCH_MARGIN_S, self._dedupe_window_s
        )
        since_us = int((time.time() - search_s) * 1_000_000)
        for (replies,) in self.cursor.execute(
            f"SELECT replies FROM {APPLIED_TABLE} WHERE committed_us >= ? "
            "ORDER BY committed_us DESC",
            (since_us,),
        ):
            for recorded_id, result in wire.unpack(replies):
                if recorded_id == request_id:
                    return True, result
        return False, None

    def read(self, op: str, args: list[Any]) -> Any:
        """A read on the write connection (it sees the open transaction's writes)."""
        return self.handlers.by_op[op](self.cursor, args)

    def commit(self) -> None:
        """Commit the open transaction, if any.

        On failure roll back and raise TransactionLostError.
        """
        if not self.connection.in_transaction:
            return
        try:
            if self._applied:
                self._record_applied()
            self.cursor.execute("COMMIT")
        except sqlite3.Error as exc:
            lost = self._forget_applied()
            self.rollback()
            raise TransactionLostError(exc, lost) from exc
        self._applied.clear()
        self.commits += 1
        self._prune_applied()

    def _record_applied(self) -> None:
        now_us = int(time.time() * 1_000_000)
        self._last_commit_us = max(now_us, self._last_commit_us + 1)
        self.cursor.execute(
            f"INSERT INTO {APPLIED_TABLE} VALUES (?, ?)",
            (self._last_commit_us, wire.pack(self._applied)),
        )

    def _forget_applied(self) -> set[bytes]:
        lost = {request_id for request_id, _ in self._applied}
        self._applied.clear()
        return lost

    def rollback(self) -> None:
        """Roll back the open transaction, with the writes it recorded."""
        self._applied.clear()
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
        try:
            if is_commit:
                self.commit()
            else:
                self.rollback()
        finally:
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
        cutoff_us = int((now - self._dedupe_window_s) * 1_000_000)
        self.cursor.execute(
            f"DELETE FROM {APPLIED_TABLE} WHERE committed_us < ?", (cutoff_us,)
        )

    def close(self) -> None:
        """Roll back an open lease, commit the batch, close the connection.

        Raises TransactionLostError if that last commit fails.
        """
        try:
            if self.lease is not None:
                self.end_lease(is_commit=False)
            self.commit()
        finally:
            self.connection.close()
