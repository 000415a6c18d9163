"""The server: one ROUTER socket, one writer, reader threads, one I/O thread.

The I/O thread receives every request. It runs writes (and point reads, which
are short) itself on the writer's connection, draining whatever is waiting into
one batch and committing it once before replying. Queries and deep finds go to
reader threads, whose replies come back through an inproc PULL socket.
See server/DESIGN.md for the reasoning.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import logging
import os
import socket
import sqlite3
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import IO, Any, NamedTuple, cast
from urllib.parse import urlsplit

import zmq
from micro_namedtuple_sqlite_persister import wire
from micro_namedtuple_sqlite_persister.errors import (
    PersisterError,
    ProtocolError,
    ServerTimeoutError,
    TransactionError,
)
from micro_namedtuple_sqlite_persister.spec import TableSpec

from .handlers import Handlers
from .readers import Reader, ReaderPool
from .security import (
    CurveGuard,
    explain_refused_sql,
    is_refused_for_read_only,
    load_curve_setup,
    read_only_refusal,
)
from .writer import TransactionLostError, Writer

log = logging.getLogger(__name__)

REPLY_ADDRESS = "inproc://mnsp-reader-replies"
# Plain ints: pyzmq's flag enums cost microseconds per message on the hot path.
NOBLOCK = int(zmq.NOBLOCK)
SNDMORE = int(zmq.SNDMORE)
EVENTS = int(zmq.EVENTS)
RCVMORE = int(zmq.RCVMORE)
POLLIN = int(zmq.POLLIN)
# How often the loop looks at lease expiry and stop requests while idle.
POLL_INTERVAL_MS = 100
READS_IN_LEASE = frozenset({"find", "find_by"})
DROP_REPLIES_ENV = "MNSP_TEST_DROP_REPLIES"
# How many failed writes the server remembers for clients' re-sends.
FAILED_WRITES_KEPT = 10_000


@dataclass
class ServerConfig:
    """Everything the server can be told; the CLI maps its options onto this."""

    db_path: str
    binds: list[str] = field(default_factory=lambda: [wire.DEFAULT_ADDRESS])
    synchronous: str = "normal"
    readers: int = 2
    max_message_bytes: int = wire.DEFAULT_MAX_MESSAGE_BYTES
    max_batch: int = 512
    max_queued_per_client: int = 1000
    max_reads_per_client: int = 4
    lease_timeout_s: float = 10.0
    page_rows: int = 1000
    cursor_idle_s: float = 60.0
    dedupe_window_s: float = 600.0
    stop_timeout_s: float = 10.0
    is_insecure: bool = False
    # CURVE: the server's NAME.key_secret, and directories of client NAME.key files.
    curve_secret_key_file: str | None = None
    allowed_keys_dir: str | None = None
    read_only_keys_dir: str | None = None


class Request(NamedTuple):
    """One decoded request and the client it came from."""

    identity: bytes
    request_id: bytes
    op: str
    args: list[Any]
    options: dict[str, Any]


@dataclass
class Deferred:
    """A write that waits for another client's lease to end."""

    request: Request
    give_up_at: float


class Server:
    """Serves one database file until `stop()` is called (from any thread)."""

    def __init__(self, config: ServerConfig) -> None:
        self._curve = load_curve_setup(
            config.curve_secret_key_file,
            config.allowed_keys_dir,
            config.read_only_keys_dir,
        )
        check_bind_addresses(
            config.binds, config.is_insecure, is_authenticated=self._curve is not None
        )
        self.config = config
        self.specs: dict[str, TableSpec] = {}
        self.handlers = Handlers(self.specs)
        self.counts = {
            "requests": 0,
            "writes": 0,
            "reads": 0,
            "errors": 0,
            "dropped": 0,
        }
        self._stop_requested = threading.Event()
        self._deferred: deque[Deferred] = deque()
        # Request ids a reader is working on. A client re-sends a request that
        # is slow to answer; the copy is dropped, the first reply answers both.
        self._reading: set[bytes] = set()
        # Reads each client has on the readers, queued or running, by identity.
        self._reads_by_client: dict[bytes, int] = {}
        # Recent writes that failed, by request id, oldest first: a re-send of
        # one gets the same error (see "Retries" in server/DESIGN.md).
        self._failed_writes: OrderedDict[bytes, BaseException] = OrderedDict()
        self._replies: list[tuple[bytes, bytes]] = []
        self._replies_to_drop = replies_to_drop_for_tests()
        self._context: zmq.Context[Any] = zmq.Context()
        self._guard: CurveGuard | None = None
        self._lock = hold_server_lock(config.db_path)
        self.writer = Writer(
            config.db_path,
            self.handlers,
            synchronous=config.synchronous,
            dedupe_window_s=config.dedupe_window_s,
        )

    def stop(self) -> None:
        """Ask the serving loop to finish: answer what it has, commit, return."""
        self._stop_requested.set()

    # -- lifecycle -----------------------------------------------------------------

    def serve(self) -> None:
        """Bind, serve until stopped, then shut down cleanly. Call from one thread."""
        router = self._bind()
        pull = self._context.socket(zmq.PULL)
        pull.bind(REPLY_ADDRESS)
        readers = ReaderPool([self._reader(i) for i in range(self.config.readers)])
        readers.start()
        started = time.monotonic()
        try:
            self._loop(router, pull, readers)
        finally:
            self._shut_down(router, pull, readers)
            log.info(
                "stopped seconds=%.1f commits=%d %s",
                time.monotonic() - started,
                self.writer.commits,
                " ".join(f"{name}={count}" for name, count in self.counts.items()),
            )

    def _bind(self) -> zmq.Socket[Any]:
        router = self._context.socket(zmq.ROUTER)
        router.setsockopt(zmq.MAXMSGSIZE, self.config.max_message_bytes)
        router.setsockopt(zmq.ROUTER_MANDATORY, 0)
        router.setsockopt(zmq.RCVHWM, 100_000)
        router.setsockopt(zmq.SNDHWM, 100_000)
        if self._curve is not None:
            self._guard = CurveGuard(self._context, self._curve)
            self._guard.secure(router)
        for address in self.config.binds:
            try:
                refuse_live_ipc_socket(address)
                router.bind(address)
            except (zmq.ZMQError, PersisterError) as exc:
                log.error("cannot bind address=%s reason=%s", address, exc)
                router.close(linger=0)
                self._stop_guard()
                raise
            if address.startswith("ipc://"):
                os.chmod(address[len("ipc://") :], 0o600)
            log.info("listening address=%s database=%s", address, self.config.db_path)
        return router

    def _stop_guard(self) -> None:
        """Stop CURVE authentication. Only after the router is closed."""
        if self._guard is not None:
            self._guard.stop()
            self._guard = None

    def _reader(self, index: int) -> Reader:
        return Reader(
            index,
            self.config.db_path,
            self.handlers,
            self._context,
            REPLY_ADDRESS,
            self.config.page_rows,
            self.config.cursor_idle_s,
            explain_error,
        )

    def _shut_down(
        self, router: zmq.Socket[Any], pull: zmq.Socket[Any], readers: ReaderPool
    ) -> None:
        """Answer what was received, commit, close. Runs even after an error."""
        try:
            self._receive_batch(router, readers)
            readers.stop(self.config.stop_timeout_s)
            self._forward_reader_replies(router, pull)
            for deferred in self._deferred:
                self._queue_error(
                    deferred.request.identity,
                    deferred.request.request_id,
                    ServerTimeoutError("the server stopped before this write ran"),
                )
            self._deferred.clear()
            try:
                self.writer.close()
            except TransactionLostError as exc:
                self._fail_writes(exc)
            self._send_replies(router)
        finally:
            router.close(linger=int(self.config.stop_timeout_s * 1000))
            pull.close(linger=0)
            self._stop_guard()
            self._context.term()
            self._lock.close()
            remove_ipc_files(self.config.binds)

    # -- the loop ------------------------------------------------------------------

    def _loop(
        self, router: zmq.Socket[Any], pull: zmq.Socket[Any], readers: ReaderPool
    ) -> None:
        # The reply socket is polled only while a reader owes a reply: each
        # socket polled costs a system call per wake-up.
        writes_only = [(router, POLLIN)]
        with_reads = [(router, POLLIN), (pull, POLLIN)]
        while not self._stop_requested.is_set():
            items = with_reads if self._reading else writes_only
            for sock, _ in zmq.zmq_poll(items, POLL_INTERVAL_MS):
                if sock is router:
                    self._receive_batch(router, readers)
                else:
                    self._forward_reader_replies(router, pull)
            if self.writer.expire_lease_if_due():
                self._run_deferred(readers)
                self._finish_batch(router)

    def _receive_batch(self, router: zmq.Socket[Any], readers: ReaderPool) -> None:
        """Handle every waiting request (up to max_batch), commit once, reply."""
        if self._guard is None:
            self._receive_requests(router, readers)
        else:
            self._receive_authenticated_requests(router, readers, self._guard)
        self._run_deferred(readers)
        self._finish_batch(router)

    def _receive_requests(self, router: zmq.Socket[Any], readers: ReaderPool) -> None:
        # The loop comes here when the poll saw a message, so the first receive
        # goes unchecked; the check after each one ends the batch when drained.
        for _ in range(self.config.max_batch):
            try:
                frames = receive_message(router)
            except zmq.Again:
                break
            self._handle_message(frames, readers)
            if not has_message(router):
                break

    def _receive_authenticated_requests(
        self, router: zmq.Socket[Any], readers: ReaderPool, guard: CurveGuard
    ) -> None:
        """As `_receive_requests`, with each sender's role taken from its CURVE key.

        Frames are received uncopied only to read their User-Id property; the
        plain path above keeps the faster copying receive.
        """
        for _ in range(self.config.max_batch):
            try:
                frames = router.recv_multipart(NOBLOCK, copy=False)
            except zmq.Again:
                break
            is_read_only = guard.role_of(frames[-1])
            message = [frame.bytes for frame in frames]
            if is_read_only is None:
                size = sum(map(len, message))
                self._drop(message[0], size, "sender has no known CURVE key")
            else:
                self._handle_message(message, readers, is_read_only)
            if not has_message(router):
                break

    def _finish_batch(self, router: zmq.Socket[Any]) -> None:
        if self.writer.lease is None:
            try:
                self.writer.commit()
            except TransactionLostError as exc:
                self._fail_writes(exc)
        self._send_replies(router)

    def _fail_writes(self, exc: TransactionLostError) -> None:
        """Turn the queued replies of the lost writes into the error that lost them.

        No reply may claim a write that was rolled back.
        """
        log.error("transaction rolled back, writes lost reason=%s", exc.cause)
        error = explain_error(exc.cause)
        for request_id in exc.lost:
            self._remember_failure(request_id, error)
        failed = []
        for identity, frame in self._replies:
            request_id = wire.decode_reply(frame)[0]
            if request_id in exc.lost:
                frame = wire.encode_error(request_id, error)
            failed.append((identity, frame))
        self._replies = failed

    def _send_replies(self, router: zmq.Socket[Any]) -> None:
        for identity, frame in self._replies:
            send_reply(router, identity, frame)
        self._replies.clear()

    def _forward_reader_replies(
        self, router: zmq.Socket[Any], pull: zmq.Socket[Any]
    ) -> None:
        while has_message(pull):
            try:
                identity, request_id, frame = pull.recv_multipart(NOBLOCK)
            except zmq.Again:
                return
            self._reading.discard(request_id)
            self._end_read(identity)
            send_reply(router, identity, frame)

    # -- one request ----------------------------------------------------------------

    def _handle_message(
        self, frames: list[bytes], readers: ReaderPool, is_read_only: bool = False
    ) -> None:
        identity = frames[0]
        self.counts["requests"] += 1
        if len(frames) != 2:
            self._drop(identity, sum(map(len, frames)), "expected one frame")
            return
        try:
            request_id, op, args, options = wire.decode_request(
                frames[1], self.config.max_message_bytes
            )
        except ProtocolError as exc:
            self._drop(identity, len(frames[1]), str(exc))
            return
        if is_read_only and is_refused_for_read_only(op, options):
            self._queue_error(identity, request_id, read_only_refusal(op))
            return
        self._dispatch(Request(identity, request_id, op, args, options), readers)

    def _drop(self, identity: bytes, size: int, reason: str) -> None:
        self.counts["dropped"] += 1
        log.warning(
            "dropped frame client=%s bytes=%d reason=%s", identity.hex(), size, reason
        )

    def _dispatch(self, request: Request, readers: ReaderPool) -> None:
        identity, request_id, op, args, options = request
        if self._deferred and self._is_waiting(request_id):
            # A re-sent copy of a request waiting behind a lease: the original
            # answers. Were the copy run now (the lease may have ended earlier
            # in this batch), it would be applied, and then the original again.
            return
        try:
            if op in wire.CONTROL_OPS:
                self._queue_reply(identity, request_id, self._control(op, args))
            elif op in wire.LEASE_OPS or "lease" in options:
                self._in_lease(request)
            elif op in wire.WRITE_OPS:
                self._write_or_defer(request)
            elif self.writer.lease is None and _is_point_read(op, args):
                self.counts["reads"] += 1
                self._queue_reply(identity, request_id, self.writer.read(op, args))
            elif request_id not in self._reading:
                self._submit_read(identity, request_id, op, args, readers)
        except TransactionLostError as exc:
            self._fail_writes(exc)
            # Only the lease's requests write while it is held: it is gone too.
            self.writer.lease = None
            self._fail(request, explain_error(exc.cause))
        except Exception as exc:
            self._fail(request, explain_error(exc))

    def _fail(self, request: Request, error: BaseException) -> None:
        """Answer `request` with `error`; remember it if the request was a write."""
        if request.op in wire.WRITE_OPS:
            self._remember_failure(request.request_id, error)
        self._queue_error(request.identity, request.request_id, error)

    def _remember_failure(self, request_id: bytes, error: BaseException) -> None:
        self._failed_writes[request_id] = error
        if len(self._failed_writes) > FAILED_WRITES_KEPT:
            self._failed_writes.popitem(last=False)

    def _submit_read(
        self,
        identity: bytes,
        request_id: bytes,
        op: str,
        args: list[Any],
        readers: ReaderPool,
    ) -> None:
        """Queue a read for the readers, unless its client has too many there.

        The readers take jobs in order, so without a limit one client's pile of
        slow queries would make every other client's reads wait behind it.
        """
        running = self._reads_by_client.get(identity, 0)
        if running >= self.config.max_reads_per_client:
            raise PersisterError(
                f"this client already has {running} reads running or waiting on "
                "the server's reader threads (limit --max-reads-per-client); wait "
                "for their replies before sending more."
            )
        self._reads_by_client[identity] = running + 1
        self._reading.add(request_id)
        self.counts["reads"] += 1
        readers.submit((identity, request_id, op, args))

    def _end_read(self, identity: bytes) -> None:
        left = self._reads_by_client.pop(identity, 1) - 1
        if left > 0:
            self._reads_by_client[identity] = left

    def _control(self, op: str, args: list[Any]) -> Any:
        if op == "register":
            if (
                not isinstance(args, list)
                or len(args) != 1
                or not isinstance(args[0], list)
            ):
                raise ProtocolError("register takes one array of table specs")
            return self.handlers.register(args[0])
        # ping and commit: every acknowledged write is already committed.
        return {"protocol": wire.PROTOCOL_VERSION, "pid": os.getpid()}

    def _write_or_defer(self, request: Request) -> None:
        identity, request_id, op, args, _ = request
        if self.writer.lease is not None:
            self._defer(request)
            return
        self.counts["writes"] += 1
        result = self._write_once(request)
        if self._replies_to_drop > 0:
            self._replies_to_drop -= 1
            log.warning("test hook %s: write applied, reply dropped", DROP_REPLIES_ENV)
            return
        self._queue_reply(identity, request_id, result)

    def _write_once(self, request: Request) -> Any:
        """Apply a write, unless it is a re-send of one applied or failed already.

        A re-send of a failed write fails the same way: its client may have
        been told so already, and a write it was told failed must not be stored.
        """
        _, request_id, op, args, options = request
        resent_s = options.get("resent_s")
        if resent_s is not None:
            if not isinstance(resent_s, int | float) or resent_s < 0:
                raise ProtocolError("resent_s must be a number of seconds")
            failure = self._failed_writes.get(request_id)
            if failure is not None:
                raise failure
            is_applied, result = self.writer.applied_result(request_id, resent_s)
            if is_applied:
                log.debug("re-sent request answered from the record op=%s", op)
                return result
        return self.writer.write(request_id, op, args)

    def _is_waiting(self, request_id: bytes) -> bool:
        return any(d.request.request_id == request_id for d in self._deferred)

    def _defer(self, request: Request) -> None:
        identity, _, _, _, options = request
        waiting = sum(1 for d in self._deferred if d.request.identity == identity)
        if waiting >= self.config.max_queued_per_client:
            raise PersisterError(
                f"this client already has {waiting} requests waiting for another "
                "client's transaction (limit --max-queued-per-client); retry later."
            )
        timeout_ms = options.get("timeout_ms")
        wait_s = timeout_ms / 1000 if isinstance(timeout_ms, int | float) else 60.0
        self._deferred.append(Deferred(request, time.monotonic() + wait_s))

    def _in_lease(self, request: Request) -> None:
        """begin / commit_lease / rollback_lease, and requests inside a lease."""
        identity, request_id, op, args, options = request
        if op == "begin":
            lease = self.writer.lease
            if lease is not None and lease.token == request_id:
                # A re-sent begin whose reply was lost: its lease is this one.
                self._queue_reply(identity, request_id, request_id)
                return
            if lease is not None:
                self._defer(request)
                return
            self.writer.commit()
            self.writer.begin_lease(request_id, identity, self._lease_timeout(options))
            self._queue_reply(identity, request_id, request_id)
            return
        self.writer.check_lease(options.get("lease"))
        if op in ("commit_lease", "rollback_lease"):
            self.writer.end_lease(is_commit=op == "commit_lease")
            self._queue_reply(identity, request_id, None)
            return
        if op in wire.WRITE_OPS:
            self.counts["writes"] += 1
            self._queue_reply(identity, request_id, self._write_once(request))
        elif op == "query":
            self.counts["reads"] += 1
            self._queue_reply(identity, request_id, self._query_in_lease(args))
        elif op in READS_IN_LEASE:
            self.counts["reads"] += 1
            self._queue_reply(identity, request_id, self.writer.read(op, args))
        else:
            raise TransactionError(f"{op} is not available inside a transaction.")

    def _query_in_lease(self, args: list[Any]) -> list[Any]:
        """A query inside a transaction sees its writes; it returns one page only.

        Limit: the whole result comes back at once, not in pages.
        """
        key, sql, params, is_deep, _ = args
        rows = self.writer.cursor.execute(sql, params).fetchall()
        spec = self.handlers.spec(key) if is_deep else None
        related = (
            self.handlers.load_related(self.writer.cursor, spec, rows)
            if spec is not None and rows
            else None
        )
        return [None, rows, related]

    def _lease_timeout(self, options: dict[str, Any]) -> float:
        requested = options.get("lease_timeout_s")
        if isinstance(requested, int | float) and 0 < requested:
            return min(float(requested), self.config.lease_timeout_s)
        return self.config.lease_timeout_s

    def _run_deferred(self, readers: ReaderPool) -> None:
        """Replay writes that waited for a lease, until one starts a new lease."""
        while self._deferred and self.writer.lease is None:
            deferred = self._deferred.popleft()
            if time.monotonic() > deferred.give_up_at:
                self._queue_error(
                    deferred.request.identity,
                    deferred.request.request_id,
                    ServerTimeoutError(
                        "gave up waiting for another client's transaction to end"
                    ),
                )
                continue
            self._dispatch(deferred.request, readers)

    def _queue_reply(self, identity: bytes, request_id: bytes, result: Any) -> None:
        self._replies.append((identity, wire.encode_reply(request_id, result)))

    def _queue_error(
        self, identity: bytes, request_id: bytes, exc: BaseException
    ) -> None:
        self.counts["errors"] += 1
        log.debug("error reply client=%s error=%r", identity.hex(), exc)
        self._replies.append((identity, wire.encode_error(request_id, exc)))


def hold_server_lock(db_path: str) -> IO[bytes]:
    """Lock `DB_PATH-server.lock` for this process; PersisterError if another has it.

    One server per database: a second one would be a second writer. The lock
    goes when the process ends, even by kill -9.
    """
    lock = open(f"{db_path}-server.lock", "ab")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise PersisterError(
            f"another server already serves {db_path}; a database has one server "
            "(its only writer). Connect to that server, or stop it first."
        ) from None
    return lock


def remove_ipc_files(binds: list[str]) -> None:
    """Remove the socket files of ipc addresses this server listened on."""
    for address in binds:
        if address.startswith("ipc://"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(address[len("ipc://") :])


def refuse_live_ipc_socket(address: str) -> None:
    """PersisterError if a process already listens on this ipc path.

    Binding would silently take the path over and orphan that server.
    """
    if not address.startswith("ipc://"):
        return
    path = address[len("ipc://") :]
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except OSError:
            return  # nothing listens there: a stale file, or none
    raise PersisterError(
        f"another process is listening on {address}; stop it, or bind this "
        "server to another path."
    )


def has_message(sock: zmq.Socket[Any]) -> bool:
    """True if a receive would not block.

    Cheaper than a receive that raises zmq.Again: the exception costs more than
    the whole check (measured: about 15 µs per batch on a sequential client).
    """
    return bool(cast(int, sock.getsockopt(EVENTS)) & POLLIN)


def receive_message(router: zmq.Socket[Any]) -> list[bytes]:
    """The frames of one waiting message; zmq.Again if there is none.

    A request is the sender's identity and one frame, so two receives and one
    check usually do: half the cost of pyzmq's general recv_multipart.
    """
    frames = [router.recv(NOBLOCK), router.recv(NOBLOCK)]
    while router.get(RCVMORE):
        frames.append(router.recv(NOBLOCK))
    return frames


def send_reply(router: zmq.Socket[Any], identity: bytes, frame: bytes) -> None:
    """One reply to one client (cheaper than send_multipart for two frames)."""
    router.send(identity, SNDMORE)
    router.send(frame)


def replies_to_drop_for_tests() -> int:
    """Test hook: with MNSP_TEST_DROP_REPLIES=N the first N write replies are lost.

    The writes are applied and committed as usual; only their replies are not
    sent, as when a reply is lost on the way back. Tests use it to show that the
    client's retry is answered from the applied-request record, not applied
    again. Read once, when the server starts; never set it in production.
    """
    return int(os.environ.get(DROP_REPLIES_ENV) or 0)


def _is_point_read(op: str, args: list[Any]) -> bool:
    """A find by id, not deep: one index lookup, short enough for the I/O thread.

    find_by is not: on a column without an index it scans the whole table.
    """
    return op == "find" and len(args) == 3 and not args[2]


def explain_error(exc: BaseException) -> BaseException:
    """The error to send back: ours and SQLite's as they are, others as bad input."""
    if isinstance(exc, PersisterError | sqlite3.Error):
        return explain_refused_sql(exc) or exc
    if isinstance(exc, OverflowError):
        return exc  # SQLite refused an int beyond 64 bits, as in-process
    return ProtocolError(f"malformed request arguments: {type(exc).__name__}: {exc}")


def check_bind_addresses(
    binds: list[str], is_insecure: bool, is_authenticated: bool = False
) -> None:
    """Refuse TCP addresses other than loopback, unless CURVE is on or --insecure.

    Raises PersisterError naming the address and the ways out.
    """
    if is_insecure or is_authenticated:
        return
    for address in binds:
        if not address.startswith("tcp://"):
            continue
        host = urlsplit(address).hostname or ""
        if host == "localhost":
            continue
        try:
            is_loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            is_loopback = False
        if not is_loopback:
            raise PersisterError(
                f"refusing to listen on {address}: it is reachable from other hosts "
                "and this server has no authentication. Turn CURVE on "
                "(--curve-secret-key with --allowed-keys), bind to 127.0.0.1 or an "
                "ipc:// path, or pass --insecure on a network you trust."
            )
