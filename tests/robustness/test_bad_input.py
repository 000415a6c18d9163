"""Bad input from the network: the server answers or drops it, writes nothing, and
goes on serving honest clients correctly.

One server serves the whole module (starting one per case would cost more than
the cases). Each case sends its message from a raw DEALER socket, then a ping
from the same socket: the ping's reply shows the server is still serving, and
by then the bad message has either been answered or logged as dropped.
"""

from __future__ import annotations

import random
import shutil
import struct
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import pytest
import zmq
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from micro_namedtuple_sqlite_persister import wire
from micro_namedtuple_sqlite_persister.client import RemoteEngine, connect
from micro_namedtuple_sqlite_persister.errors import BY_NAME, TransactionError
from micro_namedtuple_sqlite_persister.model import get_meta
from micro_namedtuple_sqlite_persister.server import ServerProcess

from .models import Marker
from .raw import (
    LogWatcher,
    call,
    count_dropped,
    new_request_id,
    receive_replies,
    request_frame,
    table_counts,
)

MAX_MESSAGE_BYTES = 256 * 1024
KEY = get_meta(Marker).spec.key
FLOOD_MESSAGES = 20_000
HONEST_SAVES_DURING_FLOOD = 40


@dataclass
class Served:
    server: ServerProcess
    db_path: Path
    engine: RemoteEngine
    honest: Marker
    context: zmq.Context[Any]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One server for the module, with a small --max-message-bytes."""
    directory = tmp_path_factory.mktemp("bad-input")
    socket_dir = tempfile.mkdtemp(prefix="mnsp-r-")
    server = ServerProcess(
        directory / "robust.db",
        f"ipc://{socket_dir}/server.sock",
        log_path=directory / "server.log",
        max_message_bytes=MAX_MESSAGE_BYTES,
    )
    context: zmq.Context[Any] = zmq.Context()
    try:
        server.start()
        with connect(server.address, timeout=10.0) as engine:
            engine.ensure_table_created(Marker)
            honest = engine.save(Marker(None, "honest", 0))
            yield Served(server, directory / "robust.db", engine, honest, context)
    finally:
        context.destroy(linger=0)
        server.stop(10.0)
        server.__exit__(None, None, None)
        shutil.rmtree(socket_dir, ignore_errors=True)


@pytest.fixture
def sock(served: Served) -> Iterator[zmq.Socket[Any]]:
    """A raw DEALER socket connected to the module's server."""
    dealer = served.context.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(served.server.address)
    yield dealer
    dealer.close(linger=0)


def assert_server_alive(server: ServerProcess) -> None:
    assert server.process is not None
    code = server.process.poll()
    assert code is None, f"the server exited with {code}:\n{server.read_log()[-3000:]}"


def send_then_ping(
    sock: zmq.Socket[Any], frames: list[bytes], log: LogWatcher
) -> tuple[list[tuple[bytes, bool, Any]], int]:
    """Send `frames` as one message, then a ping: (other replies, frames dropped)."""
    sock.send_multipart(frames)
    ping_id = new_request_id()
    sock.send(request_frame("ping", [], {}, ping_id))
    replies = receive_replies(sock, 5.0, until_id=ping_id)
    assert replies and replies[-1][0] == ping_id, "the server stopped answering"
    others, dropped = replies[:-1], count_dropped(log.new_text())
    if not others and not dropped:
        # A query goes to a reader thread, whose reply may follow the ping's.
        others = receive_replies(sock, 3.0, max_count=1)
    return others, dropped


def assert_answered_or_dropped(
    served: Served, sock: zmq.Socket[Any], frames: list[bytes]
) -> str:
    """The message got one well-formed reply or one WARNING, and wrote nothing.

    Returns what happened: "dropped", "answered ok" or "answered <error class>".
    """
    assert_server_alive(served.server)
    before = table_counts(served.db_path)
    log = LogWatcher(served.server.log_path)

    others, dropped = send_then_ping(sock, frames, log)

    assert_server_alive(served.server)
    assert (len(others), dropped) in ((1, 0), (0, 1)), (others, dropped)
    for _, is_ok, payload in others:
        assert is_ok or payload[0] in BY_NAME, payload
    assert table_counts(served.db_path) == before
    if dropped:
        return "dropped"
    _, is_ok, payload = others[0]
    return "answered ok" if is_ok else f"answered {payload[0]}"


def huge_header(marker: bytes, length: int = 0xFFFFFFFF) -> bytes:
    return marker + struct.pack(">I", length) + b"\x00" * 8


def request_prefix() -> bytes:
    """The start of a request frame, up to where `args` begins."""
    return b"\x95\x01" + msgpack.packb(new_request_id()) + msgpack.packb("save")


def nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


CASES: dict[str, list[bytes]] = {
    "empty_frame": [b""],
    "random_bytes": [random.Random(5).randbytes(300)],
    "truncated_msgpack": [request_frame("save", [KEY, None, ["x", 1]])[:-4]],
    "trailing_bytes": [request_frame("ping", []) + b"\x00"],
    "not_an_array": [msgpack.packb({"op": "save"})],
    "array_of_wrong_length": [msgpack.packb([1, b"id", "ping"])],
    "unsupported_version": [msgpack.packb([99, b"id", "ping", [], {}])],
    "request_id_not_bytes": [msgpack.packb([1, "id", "ping", [], {}])],
    "request_id_too_long": [msgpack.packb([1, b"i" * 65, "ping", [], {}])],
    "unknown_operation": [request_frame("drop_everything", [])],
    "operation_is_an_array": [request_frame([], [])],
    "operation_is_a_map": [request_frame({"save": 1}, [])],
    "operation_is_binary": [request_frame(b"save", [])],
    "operation_nested_too_deep_to_repr": [request_frame(nested(1010), [])],
    "version_nested_too_deep_to_repr": [
        msgpack.packb([nested(1010), b"i", "", [], {}])
    ],
    "args_not_an_array": [request_frame("save", {"key": KEY})],
    "options_not_a_map": [request_frame("save", [], [1])],
    "unknown_model_fingerprint": [request_frame("save", ["0" * 24, None, ["x", 1]])],
    "model_key_not_a_string": [request_frame("save", [[KEY], None, ["x", 1]])],
    "too_few_arguments": [request_frame("save", [KEY])],
    "row_id_a_string": [request_frame("save", [KEY, "1", ["x", 1]])],
    "row_id_a_float": [request_frame("delete", [KEY, 1.0])],
    "values_not_an_array": [request_frame("save", [KEY, None, "x"])],
    "values_of_wrong_count": [request_frame("save", [KEY, None, ["x", 1, 2]])],
    "value_unbindable_ext": [
        request_frame("save", [KEY, None, [msgpack.ExtType(5, b"x"), 1]])
    ],
    "save_many_rows_not_pairs": [request_frame("save_many", [KEY, [1, 2]])],
    "save_nodes_reference_forward": [
        request_frame("save_nodes", [[[KEY, None, ["x", 1], [[0, 5]]]]])
    ],
    "find_by_fields_not_a_map": [request_frame("find_by", [KEY, ["name"]])],
    "find_by_unknown_column": [request_frame("find_by", [KEY, {"nope": 1}])],
    "query_sql_not_text": [request_frame("query", [KEY, 5, [], False, None])],
    "query_of_wrong_arity": [request_frame("query", [KEY])],
    "fetch_unknown_cursor": [request_frame("fetch", ["7:99", 10])],
    "execute_params_not_a_list": [request_frame("execute", ["SELECT 1", 5])],
    "register_garbage": [request_frame("register", [[[1, 2, 3]]])],
    "lease_token_unhashable": [request_frame("save", [], {"lease": [1]})],
    "commit_without_lease": [request_frame("commit_lease", [], {"lease": b"x"})],
    "deeply_nested_frame": [b"\x91" * 100_000 + b"\xc0"],
    "deeply_nested_args": [request_frame("save", nested(900))],
    "deeply_nested_model_key": [request_frame("save", [nested(900), None, []])],
    "bin32_claims_4_gib": [huge_header(b"\xc6")],
    "str32_claims_4_gib": [huge_header(b"\xdb")],
    "array32_claims_4_g_items": [huge_header(b"\xdd")],
    "map32_claims_4_g_items": [huge_header(b"\xdf")],
    "args_array32_claims_4_g_items": [request_prefix() + huge_header(b"\xdd")],
    "args_bin32_claims_4_gib": [request_prefix() + huge_header(b"\xc6")],
    "two_frames": [request_frame("ping", []), request_frame("ping", [])],
    "a_thousand_frames": [b"x"] * 1000,
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", CASES)
def test_bad_message_is_answered_or_dropped_and_writes_nothing(
    case: str, served: Served, sock: zmq.Socket[Any]
) -> None:
    assert_answered_or_dropped(served, sock, CASES[case])

    assert served.engine.find(Marker, served.honest.id) == served.honest


@pytest.mark.timeout(60)
def test_message_over_the_size_limit_disconnects_only_its_sender(
    served: Served, sock: zmq.Socket[Any]
) -> None:
    oversized = request_frame("save", [KEY, None, ["x" * MAX_MESSAGE_BYTES, 1]])
    before = table_counts(served.db_path)

    sock.send(oversized)

    assert receive_replies(sock, 1.0) == []
    assert served.engine.find(Marker, served.honest.id) == served.honest
    saved = served.engine.save(Marker(None, "after-oversized", 0))
    assert served.engine.find(Marker, saved.id) == saved
    assert table_counts(served.db_path) == {**before, "Marker": before["Marker"] + 1}
    # The sender's socket reconnects by itself and is served again.
    assert call(sock, "ping", [], 5.0)[0]


@pytest.mark.timeout(60)
def test_flood_from_one_client_does_not_stop_an_honest_client(
    served: Served, sock: zmq.Socket[Any]
) -> None:
    garbage = [b"", b"\xc1", request_frame("nope", []), request_frame("ping", [])]
    flood = [garbage[index % len(garbage)] for index in range(FLOOD_MESSAGES)]
    before = table_counts(served.db_path)
    started = time.monotonic()
    for frame in flood:
        sock.send(frame)
    sent_in = time.monotonic() - started

    slowest = 0.0
    for index in range(HONEST_SAVES_DURING_FLOOD):
        started = time.monotonic()
        saved = served.engine.save(Marker(None, f"during-flood-{index}", 0))
        assert served.engine.find(Marker, saved.id) == saved
        slowest = max(slowest, time.monotonic() - started)

    assert slowest < 2.0, (
        f"an honest save took {slowest:.2f} s (flood sent in {sent_in:.2f} s)"
    )
    counts = table_counts(served.db_path)
    assert counts["Marker"] == before["Marker"] + HONEST_SAVES_DURING_FLOOD
    assert served.server.process is not None and served.server.process.poll() is None


# -- generated messages --------------------------------------------------------------

WRITE_ARITY = {"save": 3, "save_many": 2, "delete": 2, "ensure_table": 1}
leaves = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=12)
    | st.binary(max_size=12)
)
values = st.recursive(
    leaves,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=12,
)
known_ops = st.sampled_from(sorted(wire.ALL_OPS - {"begin"}))
odd_ops = st.text(max_size=10).filter(lambda op: op != "begin") | values
option_maps = st.dictionaries(
    st.sampled_from(["lease", "timeout_ms", "lease_timeout_s"]), values, max_size=2
)


def mostly(draw: st.DrawFn, right: st.SearchStrategy[Any], wrong: Any) -> Any:
    """A right value nine times in ten, so most frames get past the envelope."""
    return draw(right if draw(st.sampled_from([True] * 9 + [False])) else wrong)


@st.composite
def envelopes(draw: st.DrawFn) -> bytes:
    """A request frame, mostly well-formed, with wrong fields here and there."""
    op = mostly(draw, known_ops, odd_ops)
    extra = draw(st.lists(values, max_size=4))
    if isinstance(op, str) and len(extra) + 1 == WRITE_ARITY.get(op):
        extra.append(None)  # with the known key, a right-sized write could succeed
    args = mostly(draw, st.just([KEY, *extra]) | st.lists(values, max_size=5), values)
    options = mostly(draw, option_maps, values)
    version = mostly(draw, st.just(wire.PROTOCOL_VERSION), values)
    request_id = mostly(draw, st.binary(min_size=1, max_size=64), values)
    return msgpack.packb([version, request_id, op, args, options])  # type: ignore[no-any-return]


def truncated(frame: bytes) -> st.SearchStrategy[bytes]:
    return st.integers(0, max(0, len(frame) - 1)).map(lambda size: frame[:size])


headers = st.builds(
    huge_header,
    st.sampled_from([b"\xc6", b"\xc9", b"\xdb", b"\xdd", b"\xdf"]),
    st.integers(2**20, 2**32 - 1),
)
# Three in four are request frames, which get furthest into the server.
frames = (
    envelopes()
    | envelopes()
    | envelopes()
    | (
        envelopes().flatmap(truncated)
        | st.binary(max_size=200)
        | values.map(msgpack.packb)
        | headers
        | st.builds(bytes.__add__, st.just(request_prefix()), headers)
        | st.integers(1, 3000).map(lambda depth: b"\x91" * depth + b"\xc0")
    )
)
single_frames = frames.map(lambda frame: [frame])
messages = single_frames | single_frames | st.lists(frames, min_size=2, max_size=3)


@pytest.mark.timeout(120)
@settings(
    max_examples=3000,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(message=messages)
def test_generated_bad_message_is_answered_or_dropped_and_writes_nothing(
    served: Served, sock: zmq.Socket[Any], message: list[bytes]
) -> None:
    event(assert_answered_or_dropped(served, sock, message))


def test_honest_client_is_served_correctly_after_all_the_bad_input(
    served: Served,
) -> None:
    saved = served.engine.save(Marker(None, "after-bad-input", 0))

    assert served.engine.find(Marker, saved.id) == saved
    assert served.engine.find_by(Marker, name="honest") == served.honest


@pytest.mark.timeout(60)
def test_rollback_sent_as_sql_cannot_undo_another_clients_acknowledged_save(
    served: Served, sock: zmq.Socket[Any]
) -> None:
    save_id, rollback_id = new_request_id(), new_request_id()
    with connect(served.server.address, timeout=10.0) as holder:
        with holder.transaction():
            # Both wait behind the lease, then run in one batch: save, ROLLBACK.
            sock.send(request_frame("save", [KEY, None, ["kept", 0]], {}, save_id))
            sock.send(request_frame("execute", ["ROLLBACK", []], {}, rollback_id))
            time.sleep(0.3)
    replies = {reply[0]: reply[1:] for reply in receive_replies(sock, 10.0, None, 2)}

    assert replies[rollback_id][0] is False
    assert replies[rollback_id][1][0] == "TransactionError"
    is_ok, row_id = replies[save_id]
    assert is_ok
    assert served.engine.find(Marker, row_id) == Marker(row_id, "kept", 0)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "sql", ["COMMIT", "ROLLBACK", "END", "BEGIN", "SAVEPOINT x", "RELEASE request"]
)
def test_transaction_statement_sent_as_sql_is_refused_with_the_way_out(
    served: Served, sql: str
) -> None:
    with pytest.raises(TransactionError, match=r"transaction\(\)"):
        served.engine.query(Marker, sql)

    saved = served.engine.save(Marker(None, f"after-{sql}", 0))
    assert served.engine.find(Marker, saved.id) == saved
