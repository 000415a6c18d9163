"""The wire format between client and server: msgpack frames.

A request is one frame: `[PROTOCOL_VERSION, request_id, op, args, options]`.
`request_id` is 16 bytes chosen by the client (8 random per process + a counter),
so replies match requests and a retried write is recognised. `options` is a map
that may hold `lease` (the transaction a request belongs to), `timeout_ms`, and on
a re-send `resent_s`, the seconds since the client first sent it.

A reply is one frame: `[request_id, is_ok, payload]`; when `is_ok` is false the
payload is `[error class name, message]`.

Rows travel as arrays of primitives (None, int, float, str, bytes) in field order.
Trees never travel nested: a deep save sends flat nodes (see core.Node) and a deep
load returns rows grouped by model, so nesting depth stays constant.
"""

from __future__ import annotations

from typing import Any

import msgpack

from .errors import BY_NAME, ProtocolError, RemoteError

# Changing the frame layout breaks every deployed client: bump this with it.
PROTOCOL_VERSION = 1
DEFAULT_ADDRESS = "tcp://127.0.0.1:5555"
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024

WRITE_OPS = frozenset(
    {"ensure_table", "save", "save_many", "save_nodes", "delete", "execute"}
)
LEASE_OPS = frozenset({"begin", "commit_lease", "rollback_lease"})
READ_OPS = frozenset({"find", "find_by", "query", "fetch", "close_cursor"})
CONTROL_OPS = frozenset({"ping", "register", "commit"})
ALL_OPS = WRITE_OPS | LEASE_OPS | READ_OPS | CONTROL_OPS


def pack(value: Any) -> bytes:
    """msgpack bytes of `value` (OverflowError for an int beyond 64 bits)."""
    return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]


def unpack(frame: bytes, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> Any:
    """The value in one msgpack frame; ProtocolError if it is not exactly one."""
    if len(frame) > max_bytes:
        raise ProtocolError(
            f"frame of {len(frame)} bytes is over the limit {max_bytes}"
        )
    try:
        return msgpack.unpackb(frame, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types
        raise ProtocolError(f"undecodable frame: {type(exc).__name__}: {exc}") from exc


def encode_request(
    request_id: bytes, op: str, args: list[Any], options: dict[str, Any]
) -> bytes:
    return pack([PROTOCOL_VERSION, request_id, op, args, options])


def decode_request(
    frame: bytes, max_bytes: int
) -> tuple[bytes, str, list[Any], dict[str, Any]]:
    """(request_id, op, args, options); ProtocolError for any malformed request."""
    message = unpack(frame, max_bytes)
    if not isinstance(message, list) or len(message) != 5:
        raise ProtocolError("a request is an array of 5 items")
    version, request_id, op, args, options = message
    if version != PROTOCOL_VERSION:
        raise ProtocolError(
            f"protocol version {_shown(version)} is not supported (server speaks "
            f"{PROTOCOL_VERSION}); use a client of the same release as the server."
        )
    if not isinstance(request_id, bytes) or not 1 <= len(request_id) <= 64:
        raise ProtocolError("request id must be 1 to 64 bytes")
    # Checked as a str first: an array or map is unhashable, and the set lookup
    # would raise TypeError instead of ProtocolError.
    if not isinstance(op, str) or op not in ALL_OPS:
        raise ProtocolError(f"unknown operation {_shown(op)}")
    if not isinstance(args, list) or not isinstance(options, dict):
        raise ProtocolError("request args must be an array and options a map")
    return request_id, op, args, options


def _shown(value: Any) -> str:
    """A short description of a received value, safe to put in a log line.

    A deeply nested array's repr raises RecursionError, and a long one floods
    the log: show scalars shortened, and containers by their type only.
    """
    if not isinstance(value, str | bytes | int | float | bool | None):
        return f"of type {type(value).__name__}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def encode_reply(request_id: bytes, result: Any) -> bytes:
    return pack([request_id, True, result])


def encode_error(request_id: bytes, exc: BaseException) -> bytes:
    return pack([request_id, False, [type(exc).__name__, str(exc)]])


def decode_reply(frame: bytes) -> tuple[bytes, bool, Any]:
    message = unpack(frame)
    if not isinstance(message, list) or len(message) != 3:
        raise ProtocolError("a reply is an array of 3 items")
    request_id, is_ok, payload = message
    return request_id, bool(is_ok), payload


def error_from_reply(payload: Any) -> BaseException:
    """The exception an error reply describes, as the class the server raised."""
    name, message = payload
    cls = BY_NAME.get(name)
    if cls is None:
        return RemoteError(f"{name}: {message}")
    return cls(message)
