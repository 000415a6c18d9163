"""Saving, finding, deleting and querying rows through a real server process."""

from __future__ import annotations

import datetime as dt
import sqlite3
from typing import NamedTuple

import pytest
from micro_namedtuple_sqlite_persister import Engine, LazyRow, RowNotFoundError
from micro_namedtuple_sqlite_persister.client import RemoteEngine

from .conftest import create_sports_tables
from .models import (
    Athlete,
    Colour,
    League,
    Link,
    Paint,
    Part,
    Team,
    build_chain,
    build_tree,
    chain_positions,
    count_parts,
)


@pytest.fixture
def sports(client: RemoteEngine) -> dict[str, Athlete]:
    """Two leagues, three teams and four athletes, saved through the server."""
    create_sports_tables(client)
    big = client.save(League(None, "Big"))
    small = client.save(League(None, "Small"))
    red = client.save(Team(None, "Red", big))
    blue = client.save(Team(None, "Blue", big))
    green = client.save(Team(None, "Green", small))
    names = [("alice", red), ("bob", red), ("carol", blue), ("dave", green)]
    return {name: client.save(Athlete(None, name, team)) for name, team in names}


# -- save, find, find_by, delete -------------------------------------------------------


def test_save_without_id_inserts_and_returns_row_with_new_id(
    client: RemoteEngine,
) -> None:
    client.ensure_table_created(League)

    first = client.save(League(None, "Big"))
    second = client.save(League(None, "Small"))

    assert isinstance(first, League) and first.leaguename == "Big"
    assert first.id is not None and second.id is not None
    assert first.id != second.id


def test_save_with_id_updates_the_row(client: RemoteEngine) -> None:
    client.ensure_table_created(League)
    saved = client.save(League(None, "Big"))

    client.save(saved._replace(leaguename="Bigger"))

    assert client.find(League, saved.id) == League(saved.id, "Bigger")


def test_find_by_returns_first_matching_row_or_none(client: RemoteEngine) -> None:
    client.ensure_table_created(League)
    big = client.save(League(None, "Big"))

    assert client.find_by(League, leaguename="Big") == big
    assert client.find_by(League, leaguename="Nothing") is None


def test_delete_by_row_and_by_id_removes_rows(client: RemoteEngine) -> None:
    client.ensure_table_created(League)
    big = client.save(League(None, "Big"))
    small = client.save(League(None, "Small"))

    client.delete(big)
    client.delete(League, small.id)

    for row in (big, small):
        with pytest.raises(RowNotFoundError):
            client.find(League, row.id)


def test_ensure_table_created_twice_keeps_the_rows(client: RemoteEngine) -> None:
    client.ensure_table_created(League)
    big = client.save(League(None, "Big"))

    client.ensure_table_created(League)

    assert client.find(League, big.id) == big


# -- query and its cursor --------------------------------------------------------------


@pytest.fixture
def numbered_leagues(client: RemoteEngine) -> list[League]:
    client.ensure_table_created(League)
    return client.save_many([League(None, f"L{i:03}") for i in range(250)])


SELECT_LEAGUES = "SELECT * FROM League ORDER BY id"


def test_query_fetchall_returns_every_row_as_model(
    client: RemoteEngine, numbered_leagues: list[League]
) -> None:
    rows = client.query(League, SELECT_LEAGUES).fetchall()

    assert rows == numbered_leagues
    assert all(type(row) is League for row in rows)


def test_query_fetchone_returns_rows_then_none(
    client: RemoteEngine, numbered_leagues: list[League]
) -> None:
    cursor = client.query(League, "SELECT * FROM League WHERE id <= ?", [2])

    assert cursor.fetchone() == numbered_leagues[0]
    assert cursor.fetchone() == numbered_leagues[1]
    assert cursor.fetchone() is None


def test_query_fetchmany_returns_batches_of_the_size_asked(
    client: RemoteEngine, numbered_leagues: list[League]
) -> None:
    cursor = client.query(League, SELECT_LEAGUES)

    batches = [cursor.fetchmany(100) for _ in range(4)]

    assert [len(batch) for batch in batches] == [100, 100, 50, 0]
    assert sum(batches, []) == numbered_leagues


def test_query_iteration_yields_every_row_in_order(
    client: RemoteEngine, numbered_leagues: list[League]
) -> None:
    rows = list(client.query(League, SELECT_LEAGUES))

    assert rows == numbered_leagues


def test_query_with_named_params_filters_rows(
    client: RemoteEngine, numbered_leagues: list[League]
) -> None:
    sql = "SELECT * FROM League WHERE leaguename = :name"

    rows = client.query(League, sql, {"name": "L007"}).fetchall()

    assert rows == [numbered_leagues[7]]


def test_query_with_write_sql_runs_on_the_server_and_commits(
    client: RemoteEngine, numbered_leagues: list[League], reader: sqlite3.Connection
) -> None:
    client.query(League, "DELETE FROM League WHERE id > ?", [10]).fetchall()

    assert reader.execute("SELECT count(*) FROM League").fetchone() == (10,)


# -- related rows ----------------------------------------------------------------------


def test_find_loads_related_rows_lazily_through_the_server(
    client: RemoteEngine, sports: dict[str, Athlete]
) -> None:
    alice = client.find(Athlete, sports["alice"].id)

    assert isinstance(alice.team, LazyRow)
    assert alice.team.teamname == "Red"
    assert alice.team.league.leaguename == "Big"


def test_query_rows_load_related_rows_lazily_through_the_server(
    client: RemoteEngine, sports: dict[str, Athlete]
) -> None:
    rows = client.query(Athlete, "SELECT * FROM Athlete ORDER BY name").fetchall()

    assert [row.team.league.leaguename for row in rows] == [
        "Big",
        "Big",
        "Big",
        "Small",
    ]


def test_find_deep_returns_real_related_rows(
    client: RemoteEngine, sports: dict[str, Athlete]
) -> None:
    carol = client.find(Athlete, sports["carol"].id, deep=True)

    assert type(carol.team) is Team and type(carol.team.league) is League
    assert carol == sports["carol"]


def test_query_deep_returns_real_related_rows(
    client: RemoteEngine, sports: dict[str, Athlete]
) -> None:
    sql = "SELECT * FROM Athlete ORDER BY name"

    rows = client.query(Athlete, sql, deep=True).fetchall()

    assert rows == [sports[name] for name in ("alice", "bob", "carol", "dave")]
    assert all(type(row.team.league) is League for row in rows)


def test_save_deep_inserts_related_rows_and_returns_tree_with_ids(
    client: RemoteEngine,
) -> None:
    create_sports_tables(client)

    saved = client.save(
        Athlete(None, "eve", Team(None, "Pink", League(None, "New"))), deep=True
    )

    assert saved.team.league.id is not None and saved.team.id is not None
    assert client.find(Athlete, saved.id, deep=True) == saved


@pytest.mark.timeout(120)
def test_deep_save_and_find_of_8191_node_tree_round_trip(
    client: RemoteEngine,
) -> None:
    client.ensure_table_created(Part)
    tree = build_tree(13)

    saved = client.save(tree, deep=True)
    found = client.find(Part, saved.id, deep=True)

    assert count_parts(tree) == 8191
    assert count_parts(found) == 8191
    assert found == saved


@pytest.mark.timeout(120)
def test_deep_save_and_find_of_5000_deep_chain_round_trip(
    client: RemoteEngine,
) -> None:
    client.ensure_table_created(Link)
    chain = build_chain(5000)

    saved = client.save(chain, deep=True)
    found = client.find(Link, saved.id, deep=True)

    assert chain_positions(found) == list(range(5000))
    assert chain_positions(saved) == list(range(5000))
    assert found.next.next.id == saved.next.next.id


# -- custom types and save_many --------------------------------------------------------


def test_custom_type_unknown_to_the_server_round_trips(client: RemoteEngine) -> None:
    client.ensure_table_created(Paint)

    saved = client.save(Paint(None, "teal", Colour(0, 128, 128)))

    assert client.find(Paint, saved.id).colour == Colour(0, 128, 128)
    assert client.find_by(Paint, colour=Colour(0, 128, 128)) == saved
    assert client.query(Paint, "SELECT * FROM Paint").fetchall() == [saved]


def test_save_many_returns_rows_with_ids_in_order(
    client: RemoteEngine, reader: sqlite3.Connection
) -> None:
    client.ensure_table_created(League)

    saved = client.save_many([League(None, f"L{i}") for i in range(50)])

    assert [row.leaguename for row in saved] == [f"L{i}" for i in range(50)]
    assert len({row.id for row in saved}) == 50
    stored = reader.execute("SELECT id, leaguename FROM League ORDER BY id")
    assert [League(*row) for row in stored] == saved


def test_save_many_with_a_failing_row_saves_nothing(
    client: RemoteEngine, reader: sqlite3.Connection
) -> None:
    create_sports_tables(client)
    big = client.save(League(None, "Big"))
    teams = [Team(None, "Red", big), Team(None, "Bad", 999), Team(None, "Blue", big)]

    with pytest.raises(sqlite3.IntegrityError):
        client.save_many(teams)

    assert reader.execute("SELECT count(*) FROM Team").fetchone() == (0,)
    assert client.query(Team, "SELECT * FROM Team").fetchall() == []


def test_save_many_deep_saves_each_tree(client: RemoteEngine) -> None:
    create_sports_tables(client)
    athletes = [
        Athlete(None, f"A{i}", Team(None, f"T{i}", League(None, f"L{i}")))
        for i in range(5)
    ]

    saved = client.save_many(athletes, deep=True)

    assert [client.find(Athlete, row.id, deep=True) for row in saved] == saved


class Version(NamedTuple):
    user_version: int


def leagues_and_version(engine: Engine | RemoteEngine) -> tuple[list, list]:
    leagues = engine.query(League, "SELECT * FROM League").fetchall()
    return leagues, engine.query(Version, "PRAGMA user_version").fetchall()


@pytest.mark.parametrize(
    "sql",
    [
        "WITH new(name) AS (SELECT 'Big') INSERT INTO League (leaguename) "
        "SELECT name FROM new",
        "PRAGMA user_version = 7",
    ],
)
def test_query_with_write_that_starts_like_a_read_runs_as_in_engine(
    client: RemoteEngine, local: Engine, sql: str
) -> None:
    for engine in (local, client):
        engine.ensure_table_created(League)
        engine.query(League, sql).fetchall()
        engine.commit()

    assert leagues_and_version(client) == leagues_and_version(local)


def test_deep_save_many_with_a_failing_tree_saves_no_row_of_any_tree(
    client: RemoteEngine, reader: sqlite3.Connection
) -> None:
    create_sports_tables(client)
    good = Athlete(None, "eve", Team(None, "Pink", League(None, "New")))
    bad = Athlete(None, "fay", Team(None, "Grey", 999))

    with pytest.raises(sqlite3.IntegrityError):
        client.save_many([good, bad], deep=True)

    for table in ("League", "Team", "Athlete"):
        assert reader.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,)


class Reading(NamedTuple):
    id: int | None
    taken_at: dt.datetime


def test_datetime_parameter_through_server_compares_as_stored(
    client: RemoteEngine,
) -> None:
    noon = dt.datetime(2026, 1, 1, 12, 0)
    client.ensure_table_created(Reading)
    saved = [client.save(Reading(None, noon + dt.timedelta(hours=h))) for h in range(3)]

    later = client.query(Reading, "SELECT * FROM Reading WHERE taken_at > ?", (noon,))

    assert later.fetchall() == saved[1:]
