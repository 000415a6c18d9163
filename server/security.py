"""Who may connect, and what each client key may do.

With `--curve-secret-key` the ROUTER socket is a CURVE server: traffic is
encrypted, and a ZAP handler (pyzmq's ThreadAuthenticator, on the server's
context) admits only the client public keys found in `--allowed-keys`
(read-write) or `--read-only-keys`. For each admitted client it returns the
client's z85 public key as ZeroMQ's "User-Id" message property; the I/O thread
reads it from every request and looks the role up in one dict.

Refused clients are logged at WARNING, at most once a minute per client, since a
refused client reconnects and tries again every second or faster. A refused
client gets no reply at all: its calls end in ServerTimeoutError.

Reader connections are shared by every client, so they refuse ATTACH, DETACH and
turning `query_only` off, whoever asks (see `restrict_read_connection`).
"""

from __future__ import annotations

import errno
import logging
import math
import os
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import zmq
from micro_namedtuple_sqlite_persister import wire
from micro_namedtuple_sqlite_persister.errors import (
    AccessDeniedError,
    KeyFileError,
    PersisterError,
)
from micro_namedtuple_sqlite_persister.keys import (
    load_key_pair,
    load_public_keys,
)
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85
from zmq.utils.monitor import recv_monitor_message

log = logging.getLogger(__name__)

REFUSED_FOR_READ_ONLY = wire.WRITE_OPS | wire.LEASE_OPS
REFUSAL_LOG_INTERVAL_S = 60.0
MAX_TRACKED_REFUSALS = 10_000
MONITOR_POLL_MS = 100
MONITOR_STOP_TIMEOUT_S = 2.0
HANDSHAKE_FAILURES = (
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
)
PROTOCOL_REASONS: dict[int, str] = {
    zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH: "no CURVE keys (mechanism mismatch)",
    zmq.PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC: "handshake did not decrypt (the client "
    "has another server's public key, or a damaged key)",
}


@dataclass(frozen=True)
class CurveSetup:
    """The server's key pair and the role of every client key it admits."""

    public_key: bytes
    secret_key: bytes = field(repr=False)
    # z85 client public key -> True when that key is read-only.
    is_read_only_by_key: dict[str, bool]


def load_curve_setup(
    secret_key_file: str | None,
    allowed_keys_dir: str | None,
    read_only_keys_dir: str | None,
) -> CurveSetup | None:
    """The CURVE setup the server options describe, or None when CURVE is off.

    Raises KeyFileError for a missing or malformed key file or directory, for a
    key directory without a secret key (or the reverse), and for a client key
    listed both as read-write and as read-only; PersisterError if this libzmq
    has no CURVE.
    """
    has_key_dirs = allowed_keys_dir is not None or read_only_keys_dir is not None
    if secret_key_file is None:
        if has_key_dirs:
            raise KeyFileError(
                "--allowed-keys and --read-only-keys need --curve-secret-key, the "
                "server's NAME.key_secret file, to turn CURVE on."
            )
        return None
    if not has_key_dirs:
        raise KeyFileError(
            "--curve-secret-key needs --allowed-keys or --read-only-keys (or "
            "both): without a directory of client public keys no client could "
            "connect."
        )
    if not zmq.has("curve"):
        raise PersisterError(
            "this libzmq was built without CURVE support; install a pyzmq wheel, "
            "which bundles a libzmq with CURVE."
        )

    _warn_if_readable_by_others(secret_key_file)
    public_key, secret_key = load_key_pair(secret_key_file)
    roles = _client_roles(allowed_keys_dir, read_only_keys_dir)
    return CurveSetup(public_key, secret_key, roles)


def _warn_if_readable_by_others(path: str) -> None:
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # load_key_pair reports the missing file
    if mode & 0o077:
        log.warning(
            "secret key file is readable by other users path=%s mode=%o; run "
            "chmod 600 on it",
            path,
            mode & 0o777,
        )


def _client_roles(
    allowed_keys_dir: str | None, read_only_keys_dir: str | None
) -> dict[str, bool]:
    writers = load_public_keys(allowed_keys_dir) if allowed_keys_dir else {}
    readers = load_public_keys(read_only_keys_dir) if read_only_keys_dir else {}
    for key, path in readers.items():
        if key in writers:
            raise KeyFileError(
                f"the key in {path} is also in {writers[key]}: a client key is "
                "either read-write (--allowed-keys) or read-only "
                "(--read-only-keys); remove one of the two files."
            )

    roles = {key.decode("ascii"): False for key in writers}
    roles.update({key.decode("ascii"): True for key in readers})
    log.info(
        "client keys loaded read_write=%d read_only=%d", len(writers), len(readers)
    )
    if not roles:
        log.warning(
            "no client keys found allowed_keys=%s read_only_keys=%s: every client "
            "will be refused",
            allowed_keys_dir,
            read_only_keys_dir,
        )
    return roles


# -- roles -------------------------------------------------------------------------


def is_refused_for_read_only(op: str, options: dict[str, Any]) -> bool:
    """True for writes, DDL, SQL `execute`, transactions and any op in a transaction."""
    return op in REFUSED_FOR_READ_ONLY or "lease" in options


def read_only_refusal(op: str) -> AccessDeniedError:
    what = "SQL that is not a plain read (execute)" if op == "execute" else op
    return AccessDeniedError(
        f"{what} refused: this client's key is read-only (the server lists it in "
        "--read-only-keys). Use a key from --allowed-keys to write, or only ping, "
        "find and query with this one."
    )


# -- the CURVE server --------------------------------------------------------------


class CurveGuard:
    """Makes the ROUTER a CURVE server that admits only the configured keys.

    The I/O thread calls `secure(router)` before binding, `role_of` per request,
    and `stop()` after closing the router and before terminating the context.
    The authenticator and the handshake monitor run on threads of their own.

    Limit: keys are read once, at start; restart the server to add or remove one.
    Limit: with no ZAP handler libzmq admits every CURVE client, so the handler
    starts before the first bind and stops only after the router is closed.
    """

    def __init__(self, context: zmq.Context[Any], setup: CurveSetup) -> None:
        self._context = context
        self._setup = setup
        self._authenticator = KeyAuthenticator(context, setup.is_read_only_by_key)
        self._monitor: HandshakeMonitor | None = None

    def secure(self, router: zmq.Socket[Any]) -> None:
        """Start the authenticator and make `router` a CURVE server. Before bind."""
        self._authenticator.configure_curve_callback("*", self._authenticator)
        self._authenticator.start()
        router.setsockopt(zmq.CURVE_SERVER, 1)
        router.setsockopt(zmq.CURVE_PUBLICKEY, self._setup.public_key)
        router.setsockopt(zmq.CURVE_SECRETKEY, self._setup.secret_key)
        self._monitor = HandshakeMonitor(self._context, router)
        self._monitor.start()
        log.info(
            "curve on server_key=%s clients=%d",
            self._setup.public_key.decode("ascii"),
            len(self._setup.is_read_only_by_key),
        )

    def role_of(self, frame: zmq.Frame) -> bool | None:
        """True if the sender's key is read-only, False if read-write, None if unknown.

        Every frame of an admitted client carries its z85 public key as User-Id.
        """
        try:
            user_id = frame.get("User-Id")
        except zmq.ZMQError:
            return None
        return self._setup.is_read_only_by_key.get(str(user_id))

    def stop(self) -> None:
        """Stop the monitor and the authenticator; their sockets close."""
        if self._monitor is not None:
            self._monitor.stop()
            self._monitor = None
        self._authenticator.stop()


class KeyAuthenticator(ThreadAuthenticator):
    """ZAP on its own thread: admits the configured keys, logs the others.

    It is also its own credentials provider (`callback`), as pyzmq's
    `configure_curve_callback` expects; one dict lookup per connection.
    """

    def __init__(
        self, context: zmq.Context[Any], is_read_only_by_key: dict[str, bool]
    ) -> None:
        super().__init__(context, log=log.getChild("zap"))
        self._keys = is_read_only_by_key
        self._refusals = RefusalLog()
        self._peer_address = "?"

    async def handle_zap_message(self, msg: list[bytes]) -> None:
        # A ZAP request is: version, request id, domain, address, identity,
        # mechanism, credentials. Only the address is kept, for the refusal log.
        if len(msg) > 3:
            self._peer_address = msg[3].decode("ascii", "replace")
        await super().handle_zap_message(msg)

    def callback(self, domain: str, key: bytes) -> bool:
        """Admit `key` (z85) if it is configured; called on the ZAP thread."""
        client_key = key.decode("ascii", "replace")
        if client_key in self._keys:
            return True
        self._refusals.warn(
            client_key,
            "refused client key=%s address=%s reason=unknown key",
            client_key,
            self._peer_address,
        )
        return False

    def curve_user_id(self, client_public_key: bytes) -> str:
        """The User-Id of an admitted client: its z85 public key."""
        return z85.encode(client_public_key).decode("ascii")


class HandshakeMonitor(threading.Thread):
    """Logs clients whose handshake failed before the authenticator saw a key.

    A client without CURVE keys, or with another server's public key, never
    reaches ZAP; the socket monitor is where the server hears of it. ZeroMQ
    names only the listening address in these events, not the client's.
    """

    def __init__(self, context: zmq.Context[Any], router: zmq.Socket[Any]) -> None:
        super().__init__(name="mnsp-curve-monitor", daemon=True)
        self._context = context
        self._address = f"inproc://mnsp-curve-monitor-{id(router)}"
        self._stop_requested = threading.Event()
        self._refusals = RefusalLog()
        router.monitor(self._address, HANDSHAKE_FAILURES)

    def run(self) -> None:
        sock = self._context.socket(zmq.PAIR)
        sock.connect(self._address)
        try:
            while not self._stop_requested.is_set():
                if sock.poll(MONITOR_POLL_MS):
                    self._report(recv_monitor_message(sock))
        finally:
            sock.close(linger=0)

    def _report(self, event: dict[str, Any]) -> None:
        if not event["event"] & HANDSHAKE_FAILURES:
            return
        endpoint = bytes(event["endpoint"]).decode("ascii", "replace")
        reason = _handshake_reason(event["event"], int(event["value"]))
        self._refusals.warn(
            f"{endpoint} {reason}",
            "refused client endpoint=%s reason=%s",
            endpoint,
            reason,
        )

    def stop(self) -> None:
        self._stop_requested.set()
        self.join(MONITOR_STOP_TIMEOUT_S)


def _handshake_reason(event: int, value: int) -> str:
    """A protocol failure's value is a ZMTP error code; any other's is an errno."""
    if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
        return PROTOCOL_REASONS.get(value, f"handshake protocol error code={value:#x}")
    name = errno.errorcode.get(value, str(value))
    return (
        f"handshake broken off errno={name} (a client without CURVE keys, or "
        "with another server's public key)"
    )


class RefusalLog:
    """WARNING lines about refused clients, at most one per client per interval.

    Used by one thread only. The next line after a quiet interval counts the
    refusals it did not log (`repeats=`).
    """

    def __init__(self, interval_s: float = REFUSAL_LOG_INTERVAL_S) -> None:
        self._interval_s = interval_s
        self._seen: dict[str, tuple[float, int]] = {}

    def warn(self, client: str, message: str, *args: object) -> None:
        now = time.monotonic()
        logged_at, repeats = self._seen.get(client, (-math.inf, 0))
        if now - logged_at < self._interval_s:
            self._seen[client] = (logged_at, repeats + 1)
            return
        if len(self._seen) >= MAX_TRACKED_REFUSALS:
            self._seen.clear()
        self._seen[client] = (now, 0)
        log.warning(message + " repeats=%d", *args, repeats)


# -- reader connections ------------------------------------------------------------


def restrict_read_connection(connection: sqlite3.Connection) -> None:
    """Refuse ATTACH, DETACH and `PRAGMA query_only = ...` on a reader connection.

    A reader connection is opened `mode=ro` with `query_only` on, yet SQLite still
    runs ATTACH there: it counts as read-only, creates a missing file, and the
    attached file is writable once `query_only` is turned off. The authorizer
    checks each statement as SQLite compiles it, so no spelling, comment or
    leading space gets past it, and it costs nothing per row.
    """
    connection.set_authorizer(_authorize_read)


def _authorize_read(
    action: int,
    arg1: str | None,
    arg2: str | None,
    _db_name: str | None,
    _trigger: str | None,
) -> int:
    if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
        return sqlite3.SQLITE_DENY
    if (
        action == sqlite3.SQLITE_PRAGMA
        and arg2 is not None
        and (arg1 or "").lower() == "query_only"
    ):
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def explain_refused_sql(exc: BaseException) -> BaseException | None:
    """The AccessDeniedError for SQL the reader authorizer refused, else None."""
    if (
        isinstance(exc, sqlite3.DatabaseError)
        and getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_AUTH
    ):
        return AccessDeniedError(
            "the server refused this SQL: ATTACH, DETACH and changing PRAGMA "
            "query_only are not allowed in a query, because reader connections "
            "are shared by all clients. Open other database files in your own "
            "process instead."
        )
    return None
