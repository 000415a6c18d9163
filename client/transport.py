"""Request/reply over a DEALER socket, one socket per thread, made lazily.

A forked child gets a fresh context and sockets on first use (the parent's are
left alone, as ZeroMQ requires). A request that gets no reply is re-sent with the
same request id at growing intervals until its deadline, marked with the seconds
since its first send (`resent_s`): the server looks a re-sent write up in its
record (that far back) and answers from it instead of applying it twice. Past the
deadline the call raises ServerTimeoutError; nothing ever waits without a timeout.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from typing import Any

import zmq
from micro_namedtuple_sqlite_persister import wire
from micro_namedtuple_sqlite_persister.errors import ServerTimeoutError
from micro_namedtuple_sqlite_persister.keys import SocketKeys

log = logging.getLogger(__name__)

FIRST_RESEND_S = 1.0
# Plain ints: pyzmq's flag enums cost microseconds per call on the hot path.
NOBLOCK = int(zmq.NOBLOCK)
RCVTIMEO = int(zmq.RCVTIMEO)
# Contexts and sockets inherited over fork: kept referenced, never used or closed
# in the child, so garbage collection cannot disturb the parent's.
_inherited: list[Any] = []


class Transport:
    """Sends requests to one server address and returns their results."""

    def __init__(
        self, address: str, timeout: float, curve: SocketKeys | None = None
    ) -> None:
        self.address = address
        self.timeout = timeout
        self._curve = curve
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._context: zmq.Context[Any] | None = None
        self._local = threading.local()
        self._sockets: list[zmq.Socket[Any]] = []
        self._client_id = os.urandom(8)
        self._counter = itertools.count(1)

    def request(
        self,
        op: str,
        args: list[Any],
        options: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """The server's result for `op`; its error re-raised as the same class.

        Raises ServerTimeoutError when no reply comes within `timeout` (default:
        the transport's) and OverflowError for an int msgpack cannot carry.
        """
        timeout = self.timeout if timeout is None else timeout
        # The channel first: in a forked child it makes a new client id, and the
        # child must not reuse the parent's request ids, or the server would
        # answer its writes from the parent's record.
        channel = self._channel()
        request_id = self._client_id + next(self._counter).to_bytes(8, "big")
        timeout_ms = {"timeout_ms": int(timeout * 1000)}
        options = {**options, **timeout_ms} if options else timeout_ms
        is_ok, payload = self._exchange(channel, request_id, op, args, options, timeout)
        if not is_ok:
            raise wire.error_from_reply(payload)
        return payload

    def _exchange(
        self,
        channel: _Channel,
        request_id: bytes,
        op: str,
        args: list[Any],
        options: dict[str, Any],
        timeout: float,
    ) -> tuple[bool, Any]:
        frame = wire.encode_request(request_id, op, args, options)
        started = time.monotonic()
        deadline = started + timeout
        wait_s = min(FIRST_RESEND_S, timeout)
        while True:
            if _send_until(channel.socket, frame, deadline):
                reply = channel.await_reply(request_id, wait_s)
                if reply is not None:
                    return reply
            if time.monotonic() >= deadline:
                raise ServerTimeoutError(
                    f"no reply from the server at {self.address} to {op} within "
                    f"{timeout:g} s. Is the server running and reachable? The "
                    "request may still have been applied; retrying is safe."
                )
            wait_s = min(wait_s * 2, deadline - time.monotonic())
            log.debug("no reply yet, re-sending op=%s", op)
            resent_s = round(time.monotonic() - started, 3)
            frame = wire.encode_request(
                request_id, op, args, dict(options, resent_s=resent_s)
            )

    def _channel(self) -> _Channel:
        """This thread's channel to the server, made on first use (and after fork)."""
        if os.getpid() != self._pid:
            # A forked child leaves the parent's sockets alone and starts afresh.
            _inherited.append((self._context, self._sockets))
            self._reset()
        channel: _Channel | None = getattr(self._local, "channel", None)
        if channel is None:
            channel = _Channel(self._open_socket())
            self._local.channel = channel
        return channel

    def _open_socket(self) -> zmq.Socket[Any]:
        with self._lock:
            if self._context is None:
                self._context = zmq.Context()
            sock = self._context.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            # Queue only on live connections: a request to a dead server times
            # out instead of being delivered long after we gave up.
            sock.setsockopt(zmq.IMMEDIATE, 1)
            sock.setsockopt(zmq.RECONNECT_IVL, 100)
            sock.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
            if self._curve is not None:
                self._curve.apply(sock)
            sock.connect(self.address)
            self._sockets.append(sock)
        return sock

    def close(self) -> None:
        """Close this process's sockets. Later requests open new ones."""
        if os.getpid() != self._pid:
            return
        with self._lock:
            for sock in self._sockets:
                sock.close(linger=0)
            if self._context is not None:
                self._context.term()
        self._reset()


class _Channel:
    """One thread's DEALER socket and the receive timeout it is set to.

    Waiting is a blocking receive with RCVTIMEO rather than a poll: a poll costs
    a Poller and a second call into ZeroMQ on every request. The option is set
    only when the wait changes, which on the common path it does not.
    """

    def __init__(self, sock: zmq.Socket[Any]) -> None:
        self.socket = sock
        self._recv_timeout_ms = -1

    def await_reply(self, request_id: bytes, wait_s: float) -> tuple[bool, Any] | None:
        """(is_ok, payload) of the reply to `request_id`, or None after `wait_s`.

        Replies to earlier requests (that timed out) are discarded.
        """
        until = time.monotonic() + wait_s
        wait_ms = max(1, int(wait_s * 1000))
        while True:
            if wait_ms != self._recv_timeout_ms:
                self.socket.setsockopt(RCVTIMEO, wait_ms)
                self._recv_timeout_ms = wait_ms
            try:
                reply_id, is_ok, payload = wire.decode_reply(self.socket.recv())
            except zmq.Again:
                return None
            if reply_id == request_id:
                return is_ok, payload
            log.debug("discarded a late reply to an earlier request")
            wait_ms = int((until - time.monotonic()) * 1000)
            if wait_ms <= 0:
                return None


def _send_until(sock: zmq.Socket[Any], frame: bytes, deadline: float) -> bool:
    """Send once a connection exists; False if none came up before `deadline`."""
    while True:
        try:
            sock.send(frame, NOBLOCK)
            return True
        except zmq.Again:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            sock.poll(int(min(remaining, 0.05) * 1000), zmq.POLLOUT)
