"""Opening an Engine: memory or file, the real connection, commit."""

from __future__ import annotations

import sqlite3

from dbcheck import count_rows
from micro_namedtuple_sqlite_persister import Engine
from models import League


def test_engine_on_memory_saves_and_finds_rows() -> None:
    with Engine(":memory:") as engine:
        engine.ensure_table_created(League)
        saved = engine.save(League(None, "Big"))

        assert engine.find(League, saved.id) == League(saved.id, "Big")


def test_engine_on_file_uses_wal_journal(engine: Engine) -> None:
    mode = engine.connection.execute("PRAGMA journal_mode").fetchone()[0]

    assert mode == "wal"


def test_engine_connection_is_the_real_sqlite_connection(engine: Engine) -> None:
    assert isinstance(engine.connection, sqlite3.Connection)
    assert engine.connection.execute("SELECT 41 + 1").fetchone() == (42,)


def test_commit_makes_saved_rows_visible_to_other_connections(
    engine: Engine, observer: sqlite3.Connection
) -> None:
    engine.ensure_table_created(League)
    engine.commit()
    engine.save(League(None, "Big"))

    assert count_rows(observer, "League") == 0
    engine.commit()
    assert count_rows(observer, "League") == 1


def test_connection_commit_works_like_engine_commit(
    engine: Engine, observer: sqlite3.Connection
) -> None:
    engine.ensure_table_created(League)
    engine.save(League(None, "Big"))
    engine.connection.commit()

    assert count_rows(observer, "League") == 1


def test_rows_committed_to_file_are_found_by_a_new_engine(db_path, engine) -> None:
    engine.ensure_table_created(League)
    saved = engine.save(League(None, "Big"))
    engine.commit()
    engine.close()

    with Engine(str(db_path)) as reopened:
        reopened.ensure_table_created(League)
        assert reopened.find(League, saved.id) == saved


def test_uncommitted_rows_are_gone_after_close(db_path, engine) -> None:
    engine.ensure_table_created(League)
    engine.commit()
    engine.save(League(None, "Lost"))
    engine.close()

    with Engine(str(db_path)) as reopened:
        assert reopened.find_by(League, leaguename="Lost") is None
