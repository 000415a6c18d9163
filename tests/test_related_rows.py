"""Related rows: lazy and deep loading, deep saves, alternate and table-less models."""

from __future__ import annotations

import pickle

import pytest
from dbcheck import count_rows, select_statements
from micro_namedtuple_sqlite_persister import (
    Engine,
    LazyRow,
    UnsavedRelatedRowError,
    select,
)
from models import (
    Athlete,
    Athlete_TeamAsIntId,
    Character,
    League,
    Part,
    RawValue,
    TableInfo,
    Team,
    Team_NameOnly,
)

# -- lazy loading ----------------------------------------------------------------------


def test_find_loads_related_row_on_first_attribute_access(
    engine: Engine, sports, statements
) -> None:
    athlete = engine.find(Athlete, sports.alice.id)
    assert len(select_statements(statements)) == 1

    assert athlete.team.teamname == "Red"
    assert len(select_statements(statements)) == 2
    assert athlete.team.league.leaguename == "Big"
    assert len(select_statements(statements)) == 3


def test_lazy_related_row_id_is_read_without_a_query(
    engine: Engine, sports, statements
) -> None:
    athlete = engine.find(Athlete, sports.alice.id)

    assert athlete.team.id == sports.red.id
    assert len(select_statements(statements)) == 1


def test_lazy_related_row_is_loaded_once(engine: Engine, sports, statements) -> None:
    team = engine.find(Athlete, sports.alice.id).team

    names = [team.teamname for _ in range(3)]

    assert names == ["Red"] * 3
    assert len(select_statements(statements)) == 2


def test_lazy_related_row_equals_and_loads_the_real_row(engine: Engine, sports) -> None:
    team = engine.find(Athlete, sports.alice.id).team

    assert isinstance(team, LazyRow)
    assert team == engine.find(Team, sports.red.id)
    assert isinstance(team.load(), Team)
    assert team.load().league.id == sports.big.id


def test_lazy_related_row_pickles_as_the_loaded_row(engine: Engine, sports) -> None:
    team = engine.find(Athlete, sports.alice.id).team

    restored = pickle.loads(pickle.dumps(team))

    assert isinstance(restored, Team)
    assert restored.teamname == "Red"


# -- deep loading ----------------------------------------------------------------------


def test_find_deep_returns_real_related_rows(engine: Engine, sports) -> None:
    athlete = engine.find(Athlete, sports.alice.id, deep=True)

    assert isinstance(athlete.team, Team)
    assert isinstance(athlete.team.league, League)
    assert athlete.team.league.leaguename == "Big"


def test_find_deep_needs_no_query_after_it_returns(
    engine: Engine, sports, statements
) -> None:
    athlete = engine.find(Athlete, sports.alice.id, deep=True)
    queries_to_load = len(select_statements(statements))

    assert athlete.team.league.leaguename == "Big"
    assert len(select_statements(statements)) == queries_to_load == 3


def test_find_deep_of_unrelated_model_returns_the_row(engine: Engine, sports) -> None:
    assert engine.find(League, sports.big.id, deep=True) == sports.big


def test_query_deep_loads_each_table_once_for_all_rows(
    engine: Engine, sports, statements
) -> None:
    athletes = engine.query(*select(Athlete), deep=True).fetchall()

    leagues = {athlete.name: athlete.team.league.leaguename for athlete in athletes}
    assert leagues == {"Alice": "Big", "Bob": "Big", "Charlie": "Small", "Dave": "Big"}
    assert len(select_statements(statements)) == 3  # Athlete, Team, League


# -- deep saving -----------------------------------------------------------------------


def test_save_deep_inserts_related_rows_first_and_returns_tree_with_ids(
    engine: Engine, sports
) -> None:
    unsaved = Athlete(None, "Eve", Team(None, "Gold", League(None, "Mid")))

    saved = engine.save(unsaved, deep=True)

    assert None not in (saved.id, saved.team.id, saved.team.league.id)
    assert engine.find(Athlete, saved.id, deep=True) == saved


def test_save_deep_updates_related_rows_that_have_ids(engine: Engine, sports) -> None:
    renamed = sports.alice._replace(team=sports.red._replace(teamname="Crimson"))

    engine.save(renamed, deep=True)

    assert engine.find(Team, sports.red.id).teamname == "Crimson"
    assert count_rows(engine.connection, "Team") == 3


def test_save_deep_saves_a_row_shared_within_the_tree_once(engine: Engine) -> None:
    engine.ensure_table_created(Part)
    shared = Part(None, "bolt", 0.5, None, None)

    saved = engine.save(Part(None, "frame", 9.0, shared, shared), deep=True)

    assert saved.child_a.id == saved.child_b.id
    assert count_rows(engine.connection, "Part") == 2


def test_save_deep_references_lazy_related_row_without_saving_it(
    engine: Engine, sports, statements
) -> None:
    lazy_team = engine.find(Athlete, sports.alice.id).team

    saved = engine.save(Athlete(None, "Eve", lazy_team), deep=True)

    assert engine.find(Athlete, saved.id).team.id == sports.red.id
    assert not any(sql.startswith("UPDATE") for sql in statements)


def test_save_without_deep_of_unsaved_related_row_raises(
    engine: Engine, sports
) -> None:
    with pytest.raises(UnsavedRelatedRowError):
        engine.save(Athlete(None, "Eve", Team(None, "Gold", sports.big)))

    assert engine.find_by(Athlete, name="Eve") is None


# -- alternate models ------------------------------------------------------------------


def test_alternate_model_reads_table_named_before_underscore(
    engine: Engine, sports
) -> None:
    assert engine.find(Team_NameOnly, sports.red.id) == Team_NameOnly(
        sports.red.id, "Red"
    )


def test_alternate_model_works_with_find_by_and_select(engine: Engine, sports) -> None:
    assert engine.find_by(Team_NameOnly, teamname="Blue").id == sports.blue.id
    names = {row.teamname for row in engine.query(*select(Team_NameOnly))}
    assert names == {"Red", "Ramble", "Blue"}


def test_int_id_view_returns_related_id_as_int(engine: Engine, sports) -> None:
    athlete = engine.find(Athlete_TeamAsIntId, sports.alice.id)

    assert athlete == Athlete_TeamAsIntId(sports.alice.id, "Alice", sports.red.id)
    assert type(athlete.team) is int


def test_int_id_view_save_moves_the_relation(engine: Engine, sports) -> None:
    engine.save(Athlete_TeamAsIntId(sports.alice.id, "Alice", sports.blue.id))

    assert engine.find(Athlete, sports.alice.id).team.teamname == "Blue"


def test_related_field_accepts_a_plain_id(engine: Engine, sports) -> None:
    saved = engine.save(Athlete(None, "Eve", sports.ramble.id))  # type: ignore[arg-type]

    assert engine.find(Athlete, saved.id).team.teamname == "Ramble"


# -- table-less models and Any ---------------------------------------------------------


def test_tableless_model_reads_pragma_rows(engine: Engine, sports) -> None:
    columns = engine.query(TableInfo, "PRAGMA table_info(Athlete)").fetchall()

    assert [column.name for column in columns] == ["id", "name", "team"]
    assert [column.pk for column in columns] == [1, 0, 0]
    assert all(column.dflt_value is None for column in columns)


def test_any_field_returns_raw_stored_value_of_each_type(engine: Engine) -> None:
    sql = "SELECT 7 UNION ALL SELECT 2.5 UNION ALL SELECT 'x' UNION ALL SELECT X'00ff'"

    values = [row.value for row in engine.query(RawValue, sql)]

    assert values == [7, 2.5, "x", b"\x00\xff"]
    assert [type(value) for value in values] == [int, float, str, bytes]


def test_any_field_returns_json_column_as_stored_text(engine: Engine, sports) -> None:
    engine.ensure_table_created(Character)
    engine.save(Character(None, "Harbel", {"spell": "Fireball"}))

    raw = engine.query(RawValue, "SELECT stats FROM Character").fetchone()

    assert raw == RawValue('{"spell":"Fireball"}')
