"""Bad input: a named error whose message names what was wrong, and nothing written.

The errors of `select` are tested with the rest of `select` in test_select.py.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import micro_namedtuple_sqlite_persister as package
import pytest
from dbcheck import count_rows
from micro_namedtuple_sqlite_persister import (
    Engine,
    InvalidFieldError,
    InvalidModelError,
    InvalidQueryError,
    InvalidTableModelError,
    PersisterError,
    RowNotFoundError,
    SchemaMismatchError,
    UnregisteredFieldTypeError,
    UnsavedRelatedRowError,
    ValueNotStorableError,
    register_adapt_convert,
    select,
)
from models import Athlete, League, Team, Team_NameOnly

ERROR_NAMES = [
    "AdaptConvertTypeAlreadyRegistered",
    "ColumnCountMismatchError",
    "InvalidFieldError",
    "InvalidModelError",
    "InvalidQueryError",
    "InvalidTableModelError",
    "RowNotFoundError",
    "SchemaMismatchError",
    "TransactionError",
    "UnregisteredFieldTypeError",
    "UnsavedRelatedRowError",
    "ValueNotStorableError",
]
INT64_MAX = 2**63 - 1


@pytest.mark.parametrize("name", ERROR_NAMES)
def test_error_class_is_exported_from_package_and_shares_the_base(name: str) -> None:
    error_class = getattr(package, name)

    assert name in package.__all__
    assert issubclass(error_class, PersisterError)
    assert error_class is not PersisterError


# -- models the library cannot use -----------------------------------------------------


class Gear:
    """A type nobody registered an adapter for."""


class Machine(NamedTuple):
    id: int | None
    gear: Gear


class NoIdFirst(NamedTuple):
    name: str
    id: int | None


class RequiredId(NamedTuple):
    id: int
    name: str


class AnyInTable(NamedTuple):
    id: int | None
    extra: Any


class TwoTypes(NamedTuple):
    id: int | None
    value: int | str


def test_unregistered_field_type_raises_naming_model_field_and_type(
    engine: Engine,
) -> None:
    with pytest.raises(UnregisteredFieldTypeError) as raised:
        engine.ensure_table_created(Machine)

    message = str(raised.value)
    assert "Machine.gear" in message
    assert "Gear" in message
    assert "register_adapt_convert" in message


def test_unregistered_field_type_raises_in_query_too(engine: Engine) -> None:
    with pytest.raises(UnregisteredFieldTypeError):
        engine.query(Machine, "SELECT 1, 2")


def test_table_model_without_id_first_raises_naming_model(engine: Engine) -> None:
    with pytest.raises(InvalidTableModelError) as raised:
        engine.ensure_table_created(NoIdFirst)

    assert "NoIdFirst" in str(raised.value)
    assert "`id: int | None`" in str(raised.value)


def test_table_model_with_required_id_raises(engine: Engine) -> None:
    with pytest.raises(InvalidTableModelError) as raised:
        engine.save(RequiredId(1, "x"))

    assert "RequiredId" in str(raised.value)


def test_table_model_with_any_field_raises_naming_field(engine: Engine) -> None:
    with pytest.raises(InvalidTableModelError) as raised:
        engine.ensure_table_created(AnyInTable)

    assert "AnyInTable.extra" in str(raised.value)
    assert "Any" in str(raised.value)


def test_tableless_model_cannot_be_found_by_id(engine: Engine) -> None:
    with pytest.raises(InvalidTableModelError):
        engine.find(AnyInTable, 1)


def test_union_of_two_types_raises_invalid_model(engine: Engine) -> None:
    with pytest.raises(InvalidModelError) as raised:
        engine.ensure_table_created(TwoTypes)

    assert "TwoTypes.value" in str(raised.value)


def test_plain_tuple_class_raises_invalid_model(engine: Engine) -> None:
    with pytest.raises(InvalidModelError) as raised:
        engine.ensure_table_created(tuple)

    assert "NamedTuple" in str(raised.value)


# -- rows that are not there -----------------------------------------------------------


def test_save_with_unsaved_related_row_raises_and_writes_nothing(
    engine: Engine, sports
) -> None:
    unsaved_team = Team(None, "Gold", sports.big)

    with pytest.raises(UnsavedRelatedRowError) as raised:
        engine.save(Athlete(None, "Eve", unsaved_team))

    message = str(raised.value)
    assert "Athlete.team" in message
    assert "Team" in message
    assert "deep=True" in message
    assert count_rows(engine.connection, "Athlete") == 4
    assert count_rows(engine.connection, "Team") == 3


def test_update_of_missing_id_raises_naming_model_and_id(engine: Engine, sports):
    with pytest.raises(RowNotFoundError) as raised:
        engine.save(League(404, "Ghost"))

    assert "League id=404" in str(raised.value)
    assert "id=None" in str(raised.value)  # how to insert instead
    assert count_rows(engine.connection, "League") == 2


def test_delete_of_missing_id_raises_naming_model_and_id(engine: Engine, sports):
    with pytest.raises(RowNotFoundError) as raised:
        engine.delete(League, 404)

    assert "League id=404" in str(raised.value)


def test_delete_of_unsaved_row_raises(engine: Engine, sports) -> None:
    with pytest.raises(RowNotFoundError) as raised:
        engine.delete(League(None, "Never saved"))

    assert "League" in str(raised.value)
    assert "id=None" in str(raised.value)


def test_find_of_missing_id_raises_naming_model_and_id(engine: Engine, sports):
    with pytest.raises(RowNotFoundError) as raised:
        engine.find(Athlete, 404)

    assert "Athlete" in str(raised.value)
    assert "id=404" in str(raised.value)


def test_find_of_id_none_raises(engine: Engine, sports) -> None:
    with pytest.raises(RowNotFoundError) as raised:
        engine.find(Athlete, None)  # type: ignore[arg-type]

    assert "Athlete" in str(raised.value)
    assert "None" in str(raised.value)


def test_row_not_found_is_also_a_lookup_error(engine: Engine, sports) -> None:
    with pytest.raises(LookupError):
        engine.find(League, 404)


# -- find_by arguments -----------------------------------------------------------------


def test_find_by_without_fields_raises_listing_fields(engine: Engine, sports) -> None:
    with pytest.raises(InvalidFieldError) as raised:
        engine.find_by(Athlete)

    assert "find_by(Athlete)" in str(raised.value)
    assert "id, name, team" in str(raised.value)


def test_find_by_unknown_field_raises_naming_it(engine: Engine, sports) -> None:
    with pytest.raises(InvalidFieldError) as raised:
        engine.find_by(Athlete, nickname="Al")

    assert "Athlete has no field 'nickname'" in str(raised.value)
    assert "id, name, team" in str(raised.value)


# -- schemas ---------------------------------------------------------------------------


def test_schema_mismatch_shows_both_schemas(engine: Engine, sports) -> None:
    with pytest.raises(SchemaMismatchError) as raised:
        engine.ensure_table_created(Team_NameOnly)

    message = str(raised.value)
    assert "'Team'" in message and "Team_NameOnly" in message
    assert "in the database:" in message and '"league" INTEGER' in message
    assert 'the model wants: CREATE TABLE IF NOT EXISTS "Team"' in message


def test_schema_mismatch_on_hand_made_table_raises(engine: Engine) -> None:
    engine.connection.execute("CREATE TABLE League (id INTEGER PRIMARY KEY, size INT)")

    with pytest.raises(SchemaMismatchError) as raised:
        engine.ensure_table_created(League)

    assert "size INT" in str(raised.value)
    assert '"leaguename" TEXT NOT NULL' in str(raised.value)


# -- values SQLite cannot hold ---------------------------------------------------------


class Counter(NamedTuple):
    id: int | None
    label: str
    total: int


class Fussy:
    """A registered type whose adapter refuses some values."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"Fussy({self.value})"

    def adapt(self) -> int:
        if self.value < 0:
            raise ValueError("negative values are not allowed")
        return self.value

    @classmethod
    def convert(cls, stored: int) -> Fussy:
        return cls(stored)


class FussyHolder(NamedTuple):
    id: int | None
    fussy: Fussy


def test_int_beyond_64_bits_raises_naming_field_and_writes_nothing(
    engine: Engine,
) -> None:
    engine.ensure_table_created(Counter)

    with pytest.raises(ValueNotStorableError) as raised:
        engine.save(Counter(None, "huge", INT64_MAX + 1))
    engine.commit()

    assert f"Counter.total = {INT64_MAX + 1}" in str(raised.value)
    assert "64-bit" in str(raised.value)
    assert count_rows(engine.connection, "Counter") == 0


def test_int_below_64_bits_raises_value_not_storable(engine: Engine) -> None:
    engine.ensure_table_created(Counter)

    with pytest.raises(ValueNotStorableError):
        engine.save(Counter(None, "tiny", -(2**63) - 1))

    assert count_rows(engine.connection, "Counter") == 0


def test_int_at_64_bit_limits_is_stored(engine: Engine) -> None:
    engine.ensure_table_created(Counter)

    high = engine.save(Counter(None, "high", INT64_MAX))
    low = engine.save(Counter(None, "low", -(2**63)))

    assert engine.find(Counter, high.id).total == INT64_MAX
    assert engine.find(Counter, low.id).total == -(2**63)


def test_update_with_int_beyond_64_bits_keeps_the_stored_row(engine: Engine) -> None:
    engine.ensure_table_created(Counter)
    saved = engine.save(Counter(None, "count", 1))

    with pytest.raises(ValueNotStorableError):
        engine.save(saved._replace(label="changed", total=2**64))

    assert engine.find(Counter, saved.id) == saved


def test_adapter_failure_raises_naming_field_and_value(engine: Engine) -> None:
    register_adapt_convert(Fussy, Fussy.adapt, Fussy.convert, overwrite=True)
    engine.ensure_table_created(FussyHolder)

    with pytest.raises(ValueNotStorableError) as raised:
        engine.save(FussyHolder(None, Fussy(-1)))

    assert "FussyHolder.fussy = Fussy(-1)" in str(raised.value)
    assert "negative values are not allowed" in str(raised.value)
    assert count_rows(engine.connection, "FussyHolder") == 0


class FussyNode(NamedTuple):
    id: int | None
    fussy: Fussy
    child: FussyNode | None


def test_deep_save_with_a_failing_adapter_in_a_child_names_it_and_writes_nothing(
    engine: Engine,
) -> None:
    register_adapt_convert(Fussy, Fussy.adapt, Fussy.convert, overwrite=True)
    engine.ensure_table_created(FussyNode)
    leaf = FussyNode(None, Fussy(-5), None)
    tree = FussyNode(None, Fussy(1), FussyNode(None, Fussy(2), leaf))

    with pytest.raises(ValueNotStorableError) as raised:
        engine.save(tree, deep=True)
    engine.commit()

    assert "FussyNode.fussy = Fussy(-5)" in str(raised.value)
    assert count_rows(engine.connection, "FussyNode") == 0


class NeverCreated(NamedTuple):
    id: int | None
    n: int


class HoldsNeverCreated(NamedTuple):
    id: int | None
    held: NeverCreated


def test_deep_save_into_a_table_never_created_says_to_create_it(
    engine: Engine,
) -> None:
    engine.ensure_table_created(HoldsNeverCreated)  # its related table is missing

    with pytest.raises(SchemaMismatchError, match="ensure_table_created") as raised:
        engine.save(HoldsNeverCreated(None, NeverCreated(None, 1)), deep=True)

    assert "'NeverCreated' does not exist" in str(raised.value)


def test_find_on_a_table_never_created_says_to_create_it(engine: Engine) -> None:
    with pytest.raises(SchemaMismatchError, match="ensure_table_created"):
        engine.find(NeverCreated, 1)
    with pytest.raises(SchemaMismatchError, match="ensure_table_created"):
        engine.find_by(NeverCreated, n=1)


def test_select_on_a_lambda_is_refused_with_invalid_query_error() -> None:
    with pytest.raises(InvalidQueryError):
        select(NeverCreated)(lambda n: f"WHERE {NeverCreated.n} = {n}")
