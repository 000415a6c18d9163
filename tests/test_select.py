"""`select`: whole tables, field paths with joins, named parameters, bad queries."""

from __future__ import annotations

import pytest
from micro_namedtuple_sqlite_persister import Engine, InvalidQueryError, select
from models import Athlete, Athlete_TeamAsIntId, Team, Team_NameOnly


def names_of(engine: Engine, query: tuple) -> list[str]:
    return sorted(row.name for row in engine.query(*query))


# -- whole tables ----------------------------------------------------------------------


def test_select_of_model_gives_model_and_sql_of_all_rows(
    engine: Engine, sports
) -> None:
    model, sql = select(Athlete)

    assert model is Athlete
    assert len(engine.query(model, sql).fetchall()) == 4


def test_select_of_alternate_model_reads_its_table(engine: Engine, sports) -> None:
    model, sql = select(Team_NameOnly)

    assert '"Team"' in sql
    assert {row.teamname for row in engine.query(model, sql)} == {
        "Red",
        "Ramble",
        "Blue",
    }


# -- field paths and joins -------------------------------------------------------------


def test_select_filters_on_a_field_of_the_model(engine: Engine, sports) -> None:
    @select(Athlete)
    def named_with_b():
        return f"WHERE {Athlete.name} LIKE 'B%'"

    assert names_of(engine, named_with_b()) == ["Bob"]


def test_select_path_through_one_related_model_joins_it(engine: Engine, sports) -> None:
    @select(Athlete)
    def on_red_team():
        return f"WHERE {Athlete.team.teamname} = 'Red'"

    model, sql = on_red_team()

    assert sql.count("JOIN") == 1
    assert names_of(engine, (model, sql)) == ["Alice", "Bob"]


def test_select_path_through_two_related_models_joins_both(
    engine: Engine, sports
) -> None:
    @select(Athlete)
    def in_big_league():
        return f"WHERE {Athlete.team.league.leaguename} = 'Big'"

    model, sql = in_big_league()

    assert sql.count("JOIN") == 2
    assert names_of(engine, (model, sql)) == ["Alice", "Bob", "Dave"]


def test_select_joins_each_related_table_once_for_many_paths(
    engine: Engine, sports
) -> None:
    @select(Athlete)
    def big_league_teams_named_r():
        return (
            f"WHERE {Athlete.team.league.leaguename} = 'Big' "
            f"AND {Athlete.team.teamname} LIKE 'R%' "
            f"AND {Athlete.team.league.id} IS NOT NULL "
            f"ORDER BY {Athlete.team.teamname}, {Athlete.name} DESC"
        )

    model, sql = big_league_teams_named_r()

    assert sql.count("JOIN") == 2
    assert [row.name for row in engine.query(model, sql)] == ["Bob", "Alice"]


def test_select_function_without_return_still_filters(engine: Engine, sports) -> None:
    @select(Athlete)
    def on_blue_team():
        f"WHERE {Athlete.team.teamname} = 'Blue'"  # noqa: B021 - as in the notebook

    assert names_of(engine, on_blue_team()) == ["Dave"]


def test_select_function_with_docstring_uses_its_fstring(
    engine: Engine, sports
) -> None:
    @select(Athlete)
    def named_dave():
        """Only Dave."""
        return f"WHERE {Athlete.name} = 'Dave'"

    assert names_of(engine, named_dave()) == ["Dave"]


def test_select_path_ending_at_related_field_compares_its_id(
    engine: Engine, sports
) -> None:
    @select(Athlete)
    def without_team():
        return f"WHERE {Athlete.team} IS NULL"

    assert engine.query(*without_team()).fetchall() == []


# -- parameters ------------------------------------------------------------------------


def test_select_parameter_becomes_named_sql_parameter(engine: Engine, sports) -> None:
    @select(Athlete)
    def in_league(league: str):
        return f"WHERE {Athlete.team.league.leaguename} = {league}"

    model, sql, params = in_league("Small")

    assert model is Athlete
    assert ":league" in sql
    assert params == {"league": "Small"}
    assert names_of(engine, (model, sql, params)) == ["Charlie"]


def test_select_parameters_accept_keywords_and_defaults(engine: Engine, sports) -> None:
    @select(Athlete)
    def on_team(team: str, first_letter: str = "%"):
        return (
            f"WHERE {Athlete.team.teamname} = {team} "
            f"AND {Athlete.name} LIKE {first_letter}"
        )

    assert on_team(team="Red")[2] == {"team": "Red", "first_letter": "%"}
    assert names_of(engine, on_team("Red", first_letter="B%")) == ["Bob"]


def test_select_parameter_value_is_never_spliced_into_sql(
    engine: Engine, sports
) -> None:
    @select(Athlete)
    def named(name: str):
        return f"WHERE {Athlete.name} = {name}"

    model, sql, params = named("x' OR '1'='1")

    assert "OR" not in sql
    assert engine.query(model, sql, params).fetchall() == []


def test_select_on_int_id_view_compares_the_id(engine: Engine, sports) -> None:
    @select(Athlete_TeamAsIntId)
    def on_team(team_id: int):
        return f"WHERE {Athlete_TeamAsIntId.team} = {team_id}"

    rows = engine.query(*on_team(sports.ramble.id)).fetchall()

    assert rows == [Athlete_TeamAsIntId(sports.charlie.id, "Charlie", sports.ramble.id)]


# -- bad queries -----------------------------------------------------------------------


def test_select_with_unknown_field_raises_naming_the_field() -> None:
    with pytest.raises(InvalidQueryError) as raised:

        @select(Athlete)
        def by_nickname():
            return f"WHERE {Athlete.nickname} = 'Al'"

    assert "Athlete.nickname" in str(raised.value)
    assert "fields: id, name, team" in str(raised.value)


def test_select_with_unknown_field_deep_in_path_names_its_model() -> None:
    with pytest.raises(InvalidQueryError) as raised:

        @select(Athlete)
        def by_league_size():
            return f"WHERE {Athlete.team.league.size} > 3"

    assert "League has no field 'size'" in str(raised.value)


def test_select_path_past_a_plain_field_raises() -> None:
    with pytest.raises(InvalidQueryError) as raised:

        @select(Athlete)
        def by_name_length():
            return f"WHERE {Athlete.name.length} > 3"

    assert "Athlete.name is not a related model" in str(raised.value)


def test_select_path_not_rooted_at_model_raises_naming_the_model() -> None:
    with pytest.raises(InvalidQueryError) as raised:

        @select(Athlete)
        def on_red():
            return f"WHERE {Team.teamname} = 'Red'"

    assert "Team.teamname" in str(raised.value)
    assert "Athlete.teamname" in str(raised.value)  # the suggested fix


def test_select_with_unused_parameter_raises_naming_it() -> None:
    with pytest.raises(InvalidQueryError) as raised:

        @select(Athlete)
        def named(name: str, team: str):
            return f"WHERE {Athlete.name} = {name}"

    assert "team" in str(raised.value)
    assert "not used" in str(raised.value)


def test_select_with_unknown_parameter_raises_naming_it() -> None:
    with pytest.raises(InvalidQueryError) as raised:

        @select(Athlete)
        def named(name: str):
            return f"WHERE {Athlete.name} = {nmae}"  # noqa: F821 - the typo under test

    assert "{nmae}" in str(raised.value)
    assert "name" in str(raised.value)


def test_select_call_with_unknown_keyword_raises() -> None:
    @select(Athlete)
    def named(name: str):
        return f"WHERE {Athlete.name} = {name}"

    with pytest.raises(InvalidQueryError) as raised:
        named(nickname="Al")

    assert "named" in str(raised.value)


def test_select_of_function_without_fstring_raises() -> None:
    with pytest.raises(InvalidQueryError) as raised:

        @select(Athlete)
        def computed():
            clause = "WHERE 1"
            return clause

    assert "computed" in str(raised.value)
    assert "one f-string" in str(raised.value)


def test_select_of_function_made_by_exec_raises_source_unavailable() -> None:
    namespace = {"Athlete": Athlete}
    exec('def by_exec():\n    return f"WHERE {Athlete.name} = 1"\n', namespace)

    with pytest.raises(InvalidQueryError) as raised:
        select(Athlete)(namespace["by_exec"])

    assert "cannot read the source of by_exec" in str(raised.value)
