"""One slow or stuck client does not stop the others; per-client limits hold.

A client may keep --max-reads-per-client queries on the reader threads and
--max-queued-per-client writes waiting behind another client's transaction;
past either limit it gets an error naming the option, at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import zmq
from micro_namedtuple_sqlite_persister.errors import TransactionError
from micro_namedtuple_sqlite_persister.model import get_meta

from .conftest import StartServer
from .models import SLOW_COUNT_SQL, Marker, Span
from .raw import new_request_id, receive_replies, request_frame

SLOW_STEPS = 2_000_000  # about 0.6 s on an idle reader
SLOW_QUERIES_SENT = 24  # without a limit: about 8 s of work for two readers
READS_PER_CLIENT = 2
QUEUED_PER_CLIENT = 3
LEASE_TIMEOUT_S = 1.5
KEY = get_meta(Marker).spec.key
SPAN_KEY = get_meta(Span).spec.key


def send_slow_queries(
    sock: zmq.Socket[Any], count: int, steps: int = SLOW_STEPS
) -> list[bytes]:
    ids = [new_request_id() for _ in range(count)]
    for request_id in ids:
        args = [SPAN_KEY, SLOW_COUNT_SQL, [steps], False, None]
        sock.send(request_frame("query", args, {}, request_id))
    return ids


@pytest.mark.timeout(60)
def test_many_slow_queries_from_one_client_leave_room_for_another_clients_reads(
    start_server: StartServer,
    clients: Any,
    raw_socket: Callable[[], zmq.Socket[Any]],
) -> None:
    start_server(max_reads_per_client=READS_PER_CLIENT)
    engine = clients()
    engine.ensure_table_created(Marker)
    saved = engine.save(Marker(None, "reader", 0))
    greedy = raw_socket()
    send_slow_queries(greedy, SLOW_QUERIES_SENT)
    time.sleep(0.2)  # the slow queries are on the readers

    started = time.monotonic()
    found = engine.find_by(Marker, name="reader")  # runs on a reader too
    waited = time.monotonic() - started

    assert found == saved
    assert waited < 3.0, f"another client's read waited {waited:.2f} s"
    replies = receive_replies(greedy, 10.0, max_count=SLOW_QUERIES_SENT)
    answered = [payload for _, is_ok, payload in replies if is_ok]
    refused = [payload for _, is_ok, payload in replies if not is_ok]
    assert answered == [[None, [[1, SLOW_STEPS]], None]] * READS_PER_CLIENT
    assert len(refused) == SLOW_QUERIES_SENT - READS_PER_CLIENT
    assert all("--max-reads-per-client" in message for _, message in refused)


@pytest.mark.timeout(60)
def test_client_below_the_read_limit_gets_every_reply(
    start_server: StartServer, clients: Any, raw_socket: Callable[[], zmq.Socket[Any]]
) -> None:
    start_server(max_reads_per_client=READS_PER_CLIENT)
    clients().ensure_table_created(Marker)
    sock = raw_socket()

    for _ in range(3):
        ids = send_slow_queries(sock, READS_PER_CLIENT, SLOW_STEPS // 10)
        replies = receive_replies(sock, 10.0, max_count=READS_PER_CLIENT)
        assert sorted(reply[0] for reply in replies if reply[1]) == sorted(ids)


@pytest.mark.timeout(60)
def test_held_lease_lets_reads_go_on_and_expires_so_writes_continue(
    start_server: StartServer, clients: Any, db_path: Path
) -> None:
    server = start_server(lease_timeout=LEASE_TIMEOUT_S)
    holder, other = clients(), clients()
    holder.ensure_table_created(Marker)
    kept = other.save(Marker(None, "kept", 0))

    with pytest.raises(TransactionError, match="lease expired"):
        with holder.transaction():
            holder.save(Marker(None, "held", 1))
            started = time.monotonic()
            assert other.find(Marker, kept.id) == kept
            assert other.query(Marker, "SELECT * FROM Marker").fetchall() == [kept]
            reads_took = time.monotonic() - started
            other.save(Marker(None, "waited", 2))  # until the lease expires
            write_took = time.monotonic() - started
            holder.save(Marker(None, "too late", 1))

    assert reads_took < LEASE_TIMEOUT_S / 2
    assert LEASE_TIMEOUT_S / 2 < write_took < LEASE_TIMEOUT_S + 2.0
    assert [row.name for row in other.query(Marker, "SELECT * FROM Marker")] == [
        "kept",
        "waited",
    ]
    assert "write lease expired, rolled back" in server.read_log()


@pytest.mark.timeout(60)
def test_writes_waiting_behind_a_lease_are_capped_per_client(
    start_server: StartServer,
    clients: Any,
    raw_socket: Callable[[], zmq.Socket[Any]],
) -> None:
    start_server(max_queued_per_client=QUEUED_PER_CLIENT)
    holder = clients()
    holder.ensure_table_created(Marker)
    sock = raw_socket()

    with holder.transaction():
        for index in range(QUEUED_PER_CLIENT + 2):
            args = [KEY, None, [f"queued-{index}", 0]]
            sock.send(request_frame("save", args, {}, new_request_id()))
        refused = receive_replies(sock, 2.0, max_count=2)
    applied = receive_replies(sock, 10.0, max_count=QUEUED_PER_CLIENT)

    assert [is_ok for _, is_ok, _ in refused] == [False, False]
    assert all("--max-queued-per-client" in reply[2][1] for reply in refused)
    assert [is_ok for _, is_ok, _ in applied] == [True] * QUEUED_PER_CLIENT
    names = [row.name for row in holder.query(Marker, "SELECT * FROM Marker")]
    assert names == [f"queued-{index}" for index in range(QUEUED_PER_CLIENT)]
