"""Atomic writes: save_many, `with engine.transaction():`, commit and rollback."""

from __future__ import annotations

import sqlite3

import pytest
from dbcheck import count_rows
from micro_namedtuple_sqlite_persister import (
    Engine,
    RowNotFoundError,
    TransactionError,
    ValueNotStorableError,
)
from models import Athlete, League, Tally, Team


@pytest.fixture
def leagues(engine: Engine) -> Engine:
    engine.ensure_table_created(League)
    engine.commit()
    return engine


# -- save_many -------------------------------------------------------------------------


def test_save_many_returns_every_row_with_its_id(leagues: Engine) -> None:
    saved = leagues.save_many([League(None, "Big"), League(None, "Small")])

    assert [row.leaguename for row in saved] == ["Big", "Small"]
    assert [leagues.find(League, row.id) for row in saved] == saved


def test_save_many_inserts_and_updates_in_one_call(leagues: Engine) -> None:
    big = leagues.save(League(None, "Big"))

    saved = leagues.save_many([big._replace(leaguename="Bigger"), League(None, "New")])

    assert saved[0] == League(big.id, "Bigger")
    assert leagues.find(League, big.id).leaguename == "Bigger"
    assert count_rows(leagues.connection, "League") == 2


def test_save_many_with_one_bad_row_writes_none_of_them(
    leagues: Engine, observer: sqlite3.Connection
) -> None:
    rows = [League(None, "Big"), League(None, "Small"), League(404, "Missing")]

    with pytest.raises(RowNotFoundError):
        leagues.save_many(rows)
    leagues.commit()

    assert count_rows(observer, "League") == 0


def test_save_many_with_unstorable_value_writes_none(engine: Engine) -> None:
    engine.ensure_table_created(Tally)

    with pytest.raises(ValueNotStorableError):
        engine.save_many([Tally(None, 1, None), Tally(None, 2**70, None)])
    engine.commit()

    assert count_rows(engine.connection, "Tally") == 0


def test_save_many_deep_saves_each_tree(engine: Engine, sports) -> None:
    trees = [
        Athlete(None, "Eve", Team(None, "Gold", League(None, "Mid"))),
        Athlete(None, "Fay", Team(None, "Silver", sports.small)),
    ]

    saved = engine.save_many(trees, deep=True)

    assert [athlete.team.teamname for athlete in saved] == ["Gold", "Silver"]
    assert engine.find(Athlete, saved[1].id).team.league.leaguename == "Small"


# -- transaction() ---------------------------------------------------------------------


def test_transaction_commits_all_writes_together_at_the_end(
    leagues: Engine, observer: sqlite3.Connection
) -> None:
    with leagues.transaction():
        leagues.save(League(None, "Big"))
        leagues.save(League(None, "Small"))
        assert count_rows(observer, "League") == 0

    assert count_rows(observer, "League") == 2


def test_transaction_rolls_back_every_write_on_exception(
    leagues: Engine, observer: sqlite3.Connection
) -> None:
    with pytest.raises(KeyError):
        with leagues.transaction():
            leagues.save(League(None, "Big"))
            leagues.save(League(None, "Small"))
            raise KeyError("user code failed")

    assert count_rows(leagues.connection, "League") == 0
    assert count_rows(observer, "League") == 0


def test_transaction_rolls_back_when_a_save_fails(leagues: Engine) -> None:
    with pytest.raises(RowNotFoundError):
        with leagues.transaction():
            leagues.save(League(None, "Big"))
            leagues.save(League(404, "Missing"))

    assert count_rows(leagues.connection, "League") == 0


def test_transaction_holds_save_many_and_deep_saves(engine: Engine, sports) -> None:
    with engine.transaction():
        engine.save_many([League(None, "Mid")])
        engine.save(Athlete(None, "Eve", Team(None, "Gold", sports.big)), deep=True)

    assert engine.find_by(League, leaguename="Mid") is not None
    assert engine.find_by(Athlete, name="Eve").team.teamname == "Gold"


def test_transaction_inside_transaction_raises(leagues: Engine) -> None:
    with leagues.transaction():
        with pytest.raises(TransactionError) as raised:
            with leagues.transaction():
                pass

    assert "nested" in str(raised.value)


def test_engine_is_usable_after_a_rolled_back_transaction(leagues: Engine) -> None:
    with pytest.raises(ZeroDivisionError):
        with leagues.transaction():
            leagues.save(League(None, "Lost"))
            _ = 1 / 0

    with leagues.transaction():
        kept = leagues.save(League(None, "Kept"))

    assert leagues.find_by(League, leaguename="Kept") == kept
    assert leagues.find_by(League, leaguename="Lost") is None


# -- commit and rollback ---------------------------------------------------------------


def test_rollback_discards_uncommitted_saves(leagues: Engine) -> None:
    leagues.save(League(None, "Committed"))
    leagues.commit()
    leagues.save(League(None, "Discarded"))

    leagues.rollback()

    names = [row.leaguename for row in leagues.query(League, "SELECT * FROM League")]
    assert names == ["Committed"]


def test_failed_save_keeps_earlier_uncommitted_saves(
    leagues: Engine, observer: sqlite3.Connection
) -> None:
    leagues.save(League(None, "Big"))

    with pytest.raises(RowNotFoundError):
        leagues.save(League(404, "Missing"))
    leagues.commit()

    assert count_rows(observer, "League") == 1
