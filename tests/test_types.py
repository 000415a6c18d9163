"""Field types: plain, standard, JSON, custom adapt/convert, pickled, and Optional."""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple
from zoneinfo import ZoneInfo

import pytest
from micro_namedtuple_sqlite_persister import (
    AdaptConvertTypeAlreadyRegistered,
    Engine,
    PersisterError,
    register_adapt_convert,
    select,
)
from models import (
    Character,
    Character_RawStats,
    EveryOptionalType,
    EveryType,
    League,
    PhoneNumber,
    PickledRecipe,
)


def every_type_row() -> EveryType:
    return EveryType(
        id=None,
        text="héllo, wörld",
        count=-(2**63),
        ratio=0.1,
        payload=b"\x00\x01\xff",
        flag=False,
        day=dt.date(2024, 2, 29),
        moment=dt.datetime(2024, 2, 29, 23, 59, 58, 123456),
        items=[1, "two", None, [3.5]],
        mapping={"spell": "Fireball", "level": 3, "tags": ["hot"]},
        phone=PhoneNumber(123, 4567890),
        recipe=PickledRecipe("toast", ["slice", "heat"]),
    )


def round_trip(engine: Engine, row):
    engine.ensure_table_created(type(row))
    saved = engine.save(row)
    engine.commit()
    return engine.find(type(row), saved.id)


def stored_value(engine: Engine, table: str, column: str, row_id: int):
    sql = f'SELECT "{column}" FROM "{table}" WHERE id = ?'
    return engine.connection.execute(sql, (row_id,)).fetchone()[0]


# -- each type comes back equal and of its own type ------------------------------------


def test_every_supported_type_round_trips_equal(engine: Engine) -> None:
    row = every_type_row()

    found = round_trip(engine, row)

    assert found == row._replace(id=found.id)


def test_every_supported_type_comes_back_as_its_field_type(engine: Engine) -> None:
    expected = {
        "text": str,
        "count": int,
        "ratio": float,
        "payload": bytes,
        "flag": bool,
        "day": dt.date,
        "moment": dt.datetime,
        "items": list,
        "mapping": dict,
        "phone": PhoneNumber,
        "recipe": PickledRecipe,
    }

    found = round_trip(engine, every_type_row())

    assert {name: type(getattr(found, name)) for name in expected} == expected


def test_bool_field_returns_bool_not_int(engine: Engine) -> None:
    found = round_trip(engine, every_type_row()._replace(flag=True))

    assert found.flag is True


def test_every_optional_type_round_trips_none(engine: Engine) -> None:
    engine.ensure_table_created(League)  # the table `league` refers to
    row = EveryOptionalType(None, *[None] * (len(EveryOptionalType._fields) - 1))

    found = round_trip(engine, row)

    assert found == row._replace(id=found.id)


def test_every_optional_type_round_trips_a_value(engine: Engine) -> None:
    engine.ensure_table_created(League)
    big = engine.save(League(None, "Big"))
    row = EveryOptionalType(*every_type_row(), league=big)

    found = round_trip(engine, row)

    assert found[:-1] == row._replace(id=found.id)[:-1]
    assert found.league.leaguename == "Big"


# -- datetimes -------------------------------------------------------------------------


def test_aware_datetime_comes_back_as_the_same_instant(engine: Engine) -> None:
    india = dt.timezone(dt.timedelta(hours=5, minutes=30))
    moment = dt.datetime(2024, 3, 31, 1, 30, tzinfo=india)

    found = round_trip(engine, every_type_row()._replace(moment=moment))

    assert found.moment == moment
    assert found.moment.utcoffset() == dt.timedelta(hours=5, minutes=30)
    assert found.moment.astimezone(dt.UTC) == dt.datetime(
        2024, 3, 30, 20, tzinfo=dt.UTC
    )


def test_zoneinfo_datetime_comes_back_as_the_same_instant(engine: Engine) -> None:
    summer = dt.datetime(2024, 7, 1, 12, tzinfo=ZoneInfo("Europe/Amsterdam"))

    found = round_trip(engine, every_type_row()._replace(moment=summer))

    assert found.moment == summer
    assert found.moment.utcoffset() == dt.timedelta(hours=2)


def test_naive_datetime_comes_back_naive(engine: Engine) -> None:
    found = round_trip(engine, every_type_row())

    assert found.moment.tzinfo is None


# -- JSON ------------------------------------------------------------------------------


def test_dict_field_is_stored_as_json_usable_by_sqlite_operators(
    engine: Engine,
) -> None:
    engine.ensure_table_created(Character)
    engine.save(Character(None, "Harbel", {"spell": "Fireball", "level": 3}))
    engine.save(Character(None, "Quenswen", {"spell": "Waterspout", "level": 27}))

    levels = engine.connection.execute(
        "SELECT name, stats ->> '$.level' FROM Character ORDER BY name"
    ).fetchall()

    assert levels == [("Harbel", 3), ("Quenswen", 27)]


def test_list_field_is_stored_as_json_array(engine: Engine) -> None:
    found = round_trip(engine, every_type_row())

    stored = stored_value(engine, "EveryType", "items", found.id)
    length = engine.connection.execute("SELECT json_array_length(?)", (stored,))

    assert length.fetchone() == (4,)


def test_select_filters_on_json_operator(engine: Engine) -> None:
    engine.ensure_table_created(Character)
    engine.save(Character(None, "Harbel", {"spell": "Fireball", "level": 3}))
    engine.save(Character(None, "Quenswen", {"spell": "Waterspout", "level": 27}))

    @select(Character)
    def casting(spell: str):
        return f"WHERE {Character.stats} ->> '$.spell' = {spell}"

    found = engine.query(*casting("Waterspout")).fetchall()

    assert [(row.name, row.stats["level"]) for row in found] == [("Quenswen", 27)]


def test_parameterized_list_and_dict_fields_store_as_json(engine: Engine) -> None:
    found = round_trip(engine, Scores(None, [3, 1, 2], {"a": 1}))

    assert found == Scores(found.id, [3, 1, 2], {"a": 1})


def test_field_type_decides_conversion_not_the_stored_value(engine: Engine) -> None:
    engine.ensure_table_created(Character)
    saved = engine.save(Character(None, "Harbel", {"level": 3}))

    raw = engine.find(Character_RawStats, saved.id)

    assert raw.stats == '{"level":3}'


# -- custom and pickled types ----------------------------------------------------------


def test_custom_type_is_stored_as_its_adapted_value(engine: Engine) -> None:
    found = round_trip(engine, every_type_row())

    assert stored_value(engine, "EveryType", "phone", found.id) == b"(123) 4567890"
    assert found.phone == PhoneNumber(123, 4567890)


def test_pickleable_type_is_stored_as_pickle_bytes(engine: Engine) -> None:
    found = round_trip(engine, every_type_row())

    stored = stored_value(engine, "EveryType", "recipe", found.id)

    assert isinstance(stored, bytes)
    assert found.recipe == PickledRecipe("toast", ["slice", "heat"])


def test_register_adapt_convert_twice_raises_already_registered() -> None:
    class Celsius(float):
        """Defined here so that each run registers a type never seen before."""

    register_adapt_convert(Celsius, repr, Celsius)

    with pytest.raises(AdaptConvertTypeAlreadyRegistered) as raised:
        register_adapt_convert(Celsius, repr, Celsius)

    assert "Celsius" in str(raised.value)
    assert "overwrite=True" in str(raised.value)
    assert isinstance(raised.value, PersisterError)


def test_register_adapt_convert_with_overwrite_replaces_the_pair(
    engine: Engine,
) -> None:
    register_adapt_convert(Kelvin, Kelvin.to_text, Kelvin.from_text, True)
    register_adapt_convert(Kelvin, Kelvin.to_hundredths, Kelvin.from_hundredths, True)

    found = round_trip(engine, Reading(None, Kelvin(273.15)))

    assert stored_value(engine, "Reading", "temperature", found.id) == 27315
    assert found.temperature == Kelvin(273.15)


def test_namedtuple_type_with_registered_pair_is_stored_as_a_value(
    engine: Engine,
) -> None:
    register_adapt_convert(Point, Point.to_text, Point.from_text, overwrite=True)

    found = round_trip(engine, Marker(None, Point(1.5, -2.0)))

    assert stored_value(engine, "Marker", "at", found.id) == "1.5,-2.0"
    assert found.at == Point(1.5, -2.0)


# -- types used above that only these tests register -----------------------------------


class Scores(NamedTuple):
    id: int | None
    values: list[int]
    by_name: dict[str, int]


class Kelvin:
    def __init__(self, degrees: float) -> None:
        self.degrees = degrees

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Kelvin) and other.degrees == self.degrees

    def to_text(self) -> str:
        return repr(self.degrees)

    @classmethod
    def from_text(cls, text: bytes) -> Kelvin:
        return cls(float(text))

    def to_hundredths(self) -> int:
        return round(self.degrees * 100)

    @classmethod
    def from_hundredths(cls, hundredths: int) -> Kelvin:
        return cls(hundredths / 100)


class Reading(NamedTuple):
    id: int | None
    temperature: Kelvin


class Point(NamedTuple):
    """A value type that happens to be a NamedTuple, not a table."""

    x: float
    y: float

    def to_text(self) -> str:
        return f"{self.x},{self.y}"

    @classmethod
    def from_text(cls, text: str) -> Point:
        x, y = text.split(",")
        return cls(float(x), float(y))


class Marker(NamedTuple):
    id: int | None
    at: Point
