"""`transaction()`: several requests of one client commit together, or not at all."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable

import pytest
from micro_namedtuple_sqlite_persister import TransactionError
from micro_namedtuple_sqlite_persister.client import RemoteEngine, connect
from micro_namedtuple_sqlite_persister.server import ServerProcess

from .conftest import CLIENT_TIMEOUT_S
from .models import League


@pytest.fixture
def leagues(client: RemoteEngine) -> RemoteEngine:
    client.ensure_table_created(League)
    return client


def count_leagues(reader: sqlite3.Connection) -> int:
    return reader.execute("SELECT count(*) FROM League").fetchone()[0]  # type: ignore[no-any-return]


def test_saves_in_a_transaction_commit_together_at_its_end(
    leagues: RemoteEngine, reader: sqlite3.Connection
) -> None:
    with leagues.transaction():
        for name in ("Big", "Small", "Tiny"):
            leagues.save(League(None, name))
        assert count_leagues(reader) == 0

    assert count_leagues(reader) == 3


def test_exception_in_a_transaction_rolls_back_its_saves(
    leagues: RemoteEngine, reader: sqlite3.Connection
) -> None:
    with pytest.raises(KeyError), leagues.transaction():
        leagues.save(League(None, "Big"))
        leagues.save(League(None, "Small"))
        raise KeyError("stop")

    assert count_leagues(reader) == 0
    assert leagues.find_by(League, leaguename="Big") is None
    assert leagues.save(League(None, "After")).id is not None


def test_reads_in_a_transaction_see_its_own_writes(leagues: RemoteEngine) -> None:
    with leagues.transaction():
        big = leagues.save(League(None, "Big"))

        assert leagues.find(League, big.id) == big
        assert leagues.find_by(League, leaguename="Big") == big
        assert leagues.query(League, "SELECT * FROM League").fetchall() == [big]


def test_reads_of_other_clients_do_not_see_an_open_transaction(
    leagues: RemoteEngine, other_client: RemoteEngine
) -> None:
    with leagues.transaction():
        big = leagues.save(League(None, "Big"))

        assert other_client.find_by(League, leaguename="Big") is None
        assert other_client.query(League, "SELECT * FROM League").fetchall() == []

    assert other_client.find(League, big.id) == big


@pytest.mark.timeout(60)
def test_write_of_another_client_waits_until_the_transaction_ends(
    leagues: RemoteEngine, other_client: RemoteEngine, reader: sqlite3.Connection
) -> None:
    events: list[str] = []
    other_saved = threading.Event()

    def save_from_other_client() -> None:
        other_client.save(League(None, "Other"))
        events.append("other saved")
        other_saved.set()

    waiter = threading.Thread(target=save_from_other_client)
    with leagues.transaction():
        leagues.save(League(None, "Mine"))
        waiter.start()

        assert not other_saved.wait(1.0)
        assert count_leagues(reader) == 0
        leagues.save(League(None, "Mine too"))
        events.append("transaction ends")
    waiter.join(30)

    assert events == ["transaction ends", "other saved"]
    stored = reader.execute("SELECT leaguename FROM League ORDER BY id").fetchall()
    assert stored == [("Mine",), ("Mine too",), ("Other",)]


def test_transaction_cannot_be_nested(leagues: RemoteEngine) -> None:
    with leagues.transaction():
        with pytest.raises(TransactionError), leagues.transaction():
            pass
        leagues.save(League(None, "Big"))

    assert leagues.find_by(League, leaguename="Big") is not None


@pytest.mark.timeout(60)
def test_transaction_whose_lease_expires_is_rolled_back_and_next_call_says_so(
    start_server: Callable[..., ServerProcess], server_db: object
) -> None:
    server = start_server(lease_timeout=1)
    with (
        connect(server.address, timeout=CLIENT_TIMEOUT_S) as client,
        connect(server.address, timeout=CLIENT_TIMEOUT_S) as other_client,
    ):
        client.ensure_table_created(League)

        with pytest.raises(TransactionError, match="lease expired"):
            with client.transaction():
                client.save(League(None, "Lost"))
                time.sleep(2.5)
                client.save(League(None, "Too late"))

        # The lease is gone: others write again, and the client works again.
        other_client.save(League(None, "Other"))
        client.save(League(None, "Again"))
        rows = client.query(League, "SELECT * FROM League ORDER BY id").fetchall()
    assert [row.leaguename for row in rows] == ["Other", "Again"]
    assert "write lease expired" in server.read_log()


@pytest.mark.timeout(60)
def test_transaction_that_waited_for_another_leaves_no_lease_behind(
    leagues: RemoteEngine, other_client: RemoteEngine, server: ServerProcess
) -> None:
    # Waiting longer than the client's resend interval makes it send its
    # `begin` again; the copy must not start a second, orphaned transaction.
    waiter_done = threading.Event()

    def transaction_of_other_client() -> None:
        with other_client.transaction():
            other_client.save(League(None, "Waited"))
        waiter_done.set()

    waiter = threading.Thread(target=transaction_of_other_client)
    with leagues.transaction():
        leagues.save(League(None, "First"))
        waiter.start()
        time.sleep(2.5)
    assert waiter_done.wait(20)
    waiter.join(10)

    with connect(server.address, timeout=3.0) as third_client:
        third_client.save(League(None, "Third"))
    assert leagues.find_by(League, leaguename="Third") is not None
