"""`engine.query`: the cursor's fetch methods, parameters and column counts."""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple

import pytest
from micro_namedtuple_sqlite_persister import ColumnCountMismatchError, Engine
from models import Athlete, League, LeagueCount, Team

LEAGUES_BY_NAME = "SELECT id, leaguename FROM League ORDER BY leaguename"
# The notebook's back-reference query: it selects Team's columns too, and matches
# no team (no team is named "Big"), so it returns nothing.
LEAGUE_JOIN_TEAM = (
    "SELECT * FROM League JOIN Team ON Team.league = League.id "
    "WHERE Team.teamname = 'Big'"
)


@pytest.fixture(params=[False, True], ids=["lazy", "deep"])
def deep(request: pytest.FixtureRequest) -> bool:
    return request.param


# -- fetching --------------------------------------------------------------------------


def test_fetchone_returns_rows_in_order_then_none(engine: Engine, sports, deep) -> None:
    cursor = engine.query(League, LEAGUES_BY_NAME, deep=deep)

    assert cursor.fetchone() == sports.big
    assert cursor.fetchone() == sports.small
    assert cursor.fetchone() is None


def test_fetchmany_returns_at_most_size_rows(engine: Engine, sports, deep) -> None:
    cursor = engine.query(Athlete, "SELECT * FROM Athlete ORDER BY id", deep=deep)

    first = cursor.fetchmany(3)
    rest = cursor.fetchmany(3)

    assert [row.name for row in first] == ["Alice", "Bob", "Charlie"]
    assert [row.name for row in rest] == ["Dave"]
    assert cursor.fetchmany(3) == []


def test_fetchall_returns_model_instances(engine: Engine, sports, deep) -> None:
    rows = engine.query(Team, "SELECT * FROM Team ORDER BY id", deep=deep).fetchall()

    assert all(isinstance(row, Team) for row in rows)
    assert [row.league.leaguename for row in rows] == ["Big", "Small", "Big"]


def test_iterating_the_cursor_yields_model_instances(
    engine: Engine, sports, deep
) -> None:
    cursor = engine.query(Athlete, "SELECT * FROM Athlete ORDER BY name", deep=deep)

    names = [athlete.name for athlete in cursor]

    assert names == ["Alice", "Bob", "Charlie", "Dave"]


def test_query_deep_returns_loaded_related_rows(engine: Engine, sports) -> None:
    athlete = engine.query(Athlete, "SELECT * FROM Athlete", deep=True).fetchone()

    assert isinstance(athlete.team, Team)
    assert isinstance(athlete.team.league, League)


# -- parameters ------------------------------------------------------------------------


def test_query_with_positional_params(engine: Engine, sports) -> None:
    sql = "SELECT * FROM League WHERE leaguename = ?"

    assert engine.query(League, sql, ("Small",)).fetchall() == [sports.small]


def test_query_with_named_params(engine: Engine, sports) -> None:
    sql = "SELECT * FROM League WHERE leaguename = :name"

    assert engine.query(League, sql, {"name": "Big"}).fetchall() == [sports.big]


def test_query_into_tableless_model_of_computed_columns(engine: Engine, sports) -> None:
    sql = (
        "SELECT leaguename, count(Team.id) FROM League "
        "JOIN Team ON Team.league = League.id GROUP BY leaguename ORDER BY 1"
    )

    rows = engine.query(LeagueCount, sql).fetchall()

    assert rows == [LeagueCount("Big", 2), LeagueCount("Small", 1)]


# -- column counts ---------------------------------------------------------------------


def test_query_with_wrong_column_count_and_no_rows_returns_nothing(
    engine: Engine, sports, deep
) -> None:
    cursor = engine.query(League, LEAGUE_JOIN_TEAM, deep=deep)

    assert cursor.fetchone() is None
    assert cursor.fetchall() == []


def test_query_with_wrong_column_count_raises_when_a_row_is_built(
    engine: Engine, sports, deep
) -> None:
    sql = LEAGUE_JOIN_TEAM.replace("'Big'", "'Red'")
    cursor = engine.query(League, sql, deep=deep)  # running it is fine

    with pytest.raises(ColumnCountMismatchError) as raised:
        cursor.fetchone()

    assert "5 columns" in str(raised.value)
    assert "League has 2 fields (id, leaguename)" in str(raised.value)


def test_query_with_too_few_columns_raises_column_count_mismatch(
    engine: Engine, sports, deep
) -> None:
    cursor = engine.query(Athlete, "SELECT id, name FROM Athlete", deep=deep)

    with pytest.raises(ColumnCountMismatchError) as raised:
        cursor.fetchall()

    assert "2 columns" in str(raised.value)
    assert "Athlete has 3 fields" in str(raised.value)


# -- parameters ------------------------------------------------------------------------


class Reading(NamedTuple):
    id: int | None
    taken_at: dt.datetime


def test_datetime_parameter_compares_as_stored_datetimes_do(engine: Engine) -> None:
    noon = dt.datetime(2026, 1, 1, 12, 0)
    engine.ensure_table_created(Reading)
    saved = [engine.save(Reading(None, noon + dt.timedelta(hours=h))) for h in range(3)]

    later = engine.query(Reading, "SELECT * FROM Reading WHERE taken_at > ?", (noon,))

    assert later.fetchall() == saved[1:]
