"""Retries never duplicate: a lost reply is answered from the applied-request record.

The server's test hook MNSP_TEST_DROP_REPLIES=N applies and commits the first
N writes but never sends their replies, as if the network lost them.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from micro_namedtuple_sqlite_persister import Engine
from micro_namedtuple_sqlite_persister.model import get_meta

from .conftest import StartServer
from .models import SLOW_COUNT_SQL, Marker
from .raw import call, names_stored, receive_replies, request_frame

DROP_REPLIES_ENV = "MNSP_TEST_DROP_REPLIES"


def wait_until_stored(db_path: Path, name: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while name not in names_stored(db_path):
        assert time.monotonic() < deadline, f"{name} was never committed"
        time.sleep(0.02)


@pytest.mark.timeout(60)
def test_save_whose_reply_was_lost_is_stored_once_after_the_automatic_retry(
    start_server: StartServer,
    clients: Any,
    db_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with Engine(str(db_path)) as local:
        local.ensure_table_created(Marker)
    monkeypatch.setenv(DROP_REPLIES_ENV, "1")
    server = start_server()
    engine = clients()

    saved = engine.save(Marker(None, "once", 1))  # the first write: reply lost

    assert names_stored(db_path) == ["once"]
    assert engine.find(Marker, saved.id) == saved
    assert server.read_log().count("write applied, reply dropped") == 1


@pytest.mark.timeout(60)
def test_retry_reaching_a_restarted_server_gets_the_original_id_not_a_new_row(
    start_server: StartServer,
    clients: Any,
    db_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = start_server()
    engine = clients()
    engine.ensure_table_created(Marker)
    engine.save(Marker(None, "earlier", 1))
    server.stop()
    monkeypatch.setenv(DROP_REPLIES_ENV, "1")
    server = start_server()
    result: list[Any] = []
    saving = threading.Thread(
        target=lambda: result.append(engine.save(Marker(None, "crossed", 2))),
        daemon=True,
    )
    saving.start()
    wait_until_stored(db_path, "crossed")

    server.kill()  # committed, reply never sent: as a crash right after commit
    monkeypatch.delenv(DROP_REPLIES_ENV)
    start_server()
    saving.join(30.0)

    assert not saving.is_alive()
    (saved,) = result
    assert sorted(names_stored(db_path)) == ["crossed", "earlier"]
    assert engine.find(Marker, saved.id) == saved


@pytest.mark.timeout(60)
def test_copy_of_a_waiting_write_in_the_batch_that_ends_the_lease_is_not_applied(
    start_server: StartServer, clients: Any, raw_socket: Any, db_path: Path
) -> None:
    # A client re-sends a write that waits behind another client's transaction;
    # the copy arrives in the same batch as the commit that ends it. The copy
    # must not run as a new write: the waiting original is still to run.
    start_server()
    clients().ensure_table_created(Marker)
    meta = get_meta(Marker)
    holder, writer = raw_socket(), raw_socket()
    is_ok, token = call(holder, "begin", [])
    assert is_ok
    waiting_id = b"waiting-write-01"
    save = [meta.spec.key, None, list(meta.encode(Marker(None, "waiting", 1)))]
    writer.send(request_frame("save", save, request_id=waiting_id))
    assert receive_replies(writer, 0.3) == []  # held behind the lease

    # One socket, so the server reads these in order and, as the slow query
    # keeps it busy meanwhile, in one batch: the commit, then the copy.
    lease = {"lease": token}
    holder.send(request_frame("execute", [SLOW_COUNT_SQL, [1_000_000]], lease))
    holder.send(request_frame("commit_lease", [], lease))
    holder.send(request_frame("save", save, {"resent_s": 1.0}, waiting_id))

    ended = receive_replies(holder, 10.0, max_count=2)  # the query, the commit
    (saved,) = receive_replies(writer, 10.0, until_id=waiting_id)
    assert [is_ok for _, is_ok, _ in ended] == [True, True]
    assert saved[:2] == (waiting_id, True)
    assert names_stored(db_path) == ["waiting"]


@pytest.mark.timeout(60)
def test_resent_begin_gets_its_own_lease_back_instead_of_waiting_for_it(
    start_server: StartServer, clients: Any, raw_socket: Any, db_path: Path
) -> None:
    # Its first reply lost, a client re-sends `begin`. The copy must not wait
    # behind the lease its original opened (and then open a second one that
    # nobody ends, holding every write until the lease timeout).
    start_server(lease_timeout=30)
    other = clients()
    other.ensure_table_created(Marker)
    holder = raw_socket()
    begin_id = b"begin-resent-001"
    holder.send(request_frame("begin", [], request_id=begin_id))
    holder.send(request_frame("begin", [], {"resent_s": 1.0}, begin_id))

    replies = receive_replies(holder, 10.0, max_count=2)
    assert replies == [(begin_id, True, begin_id), (begin_id, True, begin_id)]
    is_ok, _ = call(holder, "commit_lease", [], lease=begin_id)
    assert is_ok
    started = time.monotonic()
    other.save(Marker(None, "after", 1))
    assert time.monotonic() - started < 5.0  # no orphan lease to wait out
    assert names_stored(db_path) == ["after"]


@pytest.mark.timeout(60)
def test_resent_write_that_failed_fails_again_instead_of_being_applied(
    start_server: StartServer, clients: Any, raw_socket: Any, db_path: Path
) -> None:
    # The client re-sends a write it got no reply to yet; the original fails
    # (here: a table missing), its error reaches the client, and the copy
    # arrives after the cause went away. The copy must fail the same way: the
    # client was told the write failed, so it must not be stored.
    start_server()
    engine = clients()
    engine.ensure_table_created(Marker)
    sock = raw_socket()
    write_id = b"failing-write-01"
    sql = "INSERT INTO Marker (name, worker) SELECT 'late', 1 FROM Gate"
    sock.send(request_frame("execute", [sql, []], request_id=write_id))
    ((_, is_ok, error),) = receive_replies(sock, 10.0, until_id=write_id)
    assert not is_ok and "no such table: Gate" in error[1]
    engine.query(Marker, "CREATE TABLE Gate (open INTEGER)")
    engine.query(Marker, "INSERT INTO Gate VALUES (1)")

    sock.send(request_frame("execute", [sql, []], {"resent_s": 1.0}, write_id))

    ((_, is_ok, again),) = receive_replies(sock, 10.0, until_id=write_id)
    assert (is_ok, again) == (False, error)
    assert names_stored(db_path) == []
