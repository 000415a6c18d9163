"""Tables, save (insert and update), find, find_by and delete."""

from __future__ import annotations

import datetime as dt
import sqlite3
from typing import NamedTuple

import pytest
from dbcheck import count_rows
from micro_namedtuple_sqlite_persister import Engine, RowNotFoundError
from models import Athlete, League, Memo, Team


def table_names(engine: Engine) -> set[str]:
    rows = engine.connection.execute(
        "SELECT name FROM sqlite_master WHERE type='table'"
    )
    return {name for (name,) in rows}


# -- ensure_table_created --------------------------------------------------------------


def test_ensure_table_created_creates_table_named_after_model(engine: Engine) -> None:
    engine.ensure_table_created(League)

    assert "League" in table_names(engine)


def test_ensure_table_created_twice_with_same_model_passes(engine: Engine) -> None:
    engine.ensure_table_created(League)
    engine.save(League(None, "Big"))

    engine.ensure_table_created(League)

    assert engine.find_by(League, leaguename="Big") is not None


def test_ensure_table_created_on_reopened_file_passes(db_path, engine) -> None:
    engine.ensure_table_created(Team)
    engine.commit()
    engine.close()

    with Engine(str(db_path)) as reopened:
        reopened.ensure_table_created(Team)
        reopened.ensure_table_created(League)


# -- save ------------------------------------------------------------------------------


def test_save_without_id_inserts_and_returns_row_with_new_id(engine: Engine) -> None:
    engine.ensure_table_created(League)

    first = engine.save(League(None, "Big"))
    second = engine.save(League(None, "Small"))

    assert isinstance(first, League)
    assert first.id is not None and second.id is not None
    assert first.id != second.id
    assert first.leaguename == "Big"


def test_save_with_id_updates_the_stored_row(engine: Engine, observer) -> None:
    engine.ensure_table_created(League)
    saved = engine.save(League(None, "Big"))

    updated = engine.save(saved._replace(leaguename="Bigger"))
    engine.commit()

    assert updated == League(saved.id, "Bigger")
    assert engine.find(League, saved.id).leaguename == "Bigger"
    assert count_rows(observer, "League") == 1


def test_save_of_found_row_keeps_its_lazy_related_row(engine: Engine, sports) -> None:
    found = engine.find(Athlete, sports.alice.id)

    engine.save(found._replace(name="Alicia"))

    reloaded = engine.find(Athlete, sports.alice.id)
    assert reloaded.name == "Alicia"
    assert reloaded.team.teamname == "Red"


def test_save_with_related_row_stores_its_id(engine: Engine, sports) -> None:
    stored = engine.connection.execute(
        "SELECT team FROM Athlete WHERE id = ?", (sports.alice.id,)
    ).fetchone()

    assert stored == (sports.red.id,)


# -- find and find_by ------------------------------------------------------------------


def test_find_returns_row_of_that_id(engine: Engine, sports) -> None:
    found = engine.find(League, sports.small.id)

    assert found == League(sports.small.id, "Small")
    assert isinstance(found, League)


def test_find_by_returns_first_matching_row(engine: Engine, sports) -> None:
    found = engine.find_by(Athlete, name="Bob")

    assert found.id == sports.bob.id
    assert found.team.teamname == "Red"


def test_find_by_without_match_returns_none(engine: Engine, sports) -> None:
    assert engine.find_by(Athlete, name="Nobody") is None


def test_find_by_several_fields_matches_all_of_them(engine: Engine, sports) -> None:
    engine.save(League(None, "Big"))  # a second "Big" league, with a larger id

    found = engine.find_by(League, leaguename="Big", id=sports.big.id)

    assert found == sports.big


def test_find_by_related_row_matches_its_id(engine: Engine, sports) -> None:
    found = engine.find_by(Athlete, team=sports.ramble)

    assert found.name == "Charlie"


def test_find_by_none_matches_null(engine: Engine) -> None:
    engine.ensure_table_created(Memo)
    engine.save(Memo(None, "kept"))
    blank = engine.save(Memo(None, None))

    assert engine.find_by(Memo, note=None) == blank


def test_find_by_converted_field_matches_its_stored_form(engine: Engine) -> None:
    engine.ensure_table_created(Event)
    engine.save(Event(None, dt.date(2024, 1, 1), False, {"room": 1}))
    wanted = engine.save(Event(None, dt.date(2024, 1, 2), True, {"room": 2}))

    assert engine.find_by(Event, day=dt.date(2024, 1, 2)) == wanted
    assert engine.find_by(Event, is_public=True) == wanted
    assert engine.find_by(Event, details={"room": 2}) == wanted


# -- delete ----------------------------------------------------------------------------


def test_delete_by_model_and_id_removes_the_row(engine: Engine, sports) -> None:
    engine.delete(Athlete, sports.bob.id)

    assert engine.find_by(Athlete, name="Bob") is None
    assert engine.find_by(Athlete, name="Alice") is not None


def test_delete_of_row_removes_it(engine: Engine, sports) -> None:
    engine.delete(sports.charlie)

    with pytest.raises(RowNotFoundError):
        engine.find(Athlete, sports.charlie.id)


def test_delete_of_referenced_row_is_refused_by_foreign_key(
    engine: Engine, sports
) -> None:
    with pytest.raises(sqlite3.IntegrityError):
        engine.delete(League, sports.big.id)

    assert engine.find(League, sports.big.id) == sports.big


class Event(NamedTuple):
    id: int | None
    day: dt.date
    is_public: bool
    details: dict
