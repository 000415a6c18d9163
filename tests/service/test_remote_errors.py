"""The client raises what the in-process Engine raises: same class, same message."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

import pytest
from micro_namedtuple_sqlite_persister import (
    Engine,
    InvalidFieldError,
    RowNotFoundError,
    SchemaMismatchError,
    UnsavedRelatedRowError,
    ValueNotStorableError,
)
from micro_namedtuple_sqlite_persister.client import RemoteEngine

from .conftest import create_sports_tables
from .models import Counter, League, Team, Team_NameOnly

Action = Callable[[Engine | RemoteEngine], Any]


def error_of(engine: Engine | RemoteEngine, action: Action) -> BaseException:
    create_sports_tables(engine)
    engine.ensure_table_created(Counter)
    engine.save(League(None, "Big"))
    engine.commit()
    with pytest.raises(Exception) as raised:
        action(engine)
    return raised.value


CASES: dict[str, tuple[type[BaseException], Action]] = {
    "find_missing_id": (RowNotFoundError, lambda e: e.find(League, 999)),
    "delete_missing_id": (RowNotFoundError, lambda e: e.delete(League, 999)),
    "update_missing_id": (RowNotFoundError, lambda e: e.save(League(999, "Gone"))),
    "save_unsaved_related_row": (
        UnsavedRelatedRowError,
        lambda e: e.save(Team(None, "Red", League(None, "New"))),
    ),
    "schema_mismatch": (
        SchemaMismatchError,
        lambda e: e.ensure_table_created(Team_NameOnly),
    ),
    "find_by_unknown_field": (
        InvalidFieldError,
        lambda e: e.find_by(League, genre="rock"),
    ),
    "find_by_no_field": (InvalidFieldError, lambda e: e.find_by(League)),
    "insert_null_into_not_null": (
        sqlite3.IntegrityError,
        lambda e: e.query(League, "INSERT INTO League (leaguename) VALUES (NULL)"),
    ),
    "save_with_missing_foreign_key": (
        sqlite3.IntegrityError,
        lambda e: e.save(Team(None, "Red", 999)),
    ),
    "bad_sql": (
        sqlite3.OperationalError,
        lambda e: e.query(League, "SELEC * FROM League").fetchall(),
    ),
    "query_of_missing_table": (
        sqlite3.OperationalError,
        lambda e: e.query(League, "SELECT * FROM Nowhere").fetchall(),
    ),
    "int_beyond_64_bits": (
        ValueNotStorableError,
        lambda e: e.save(Counter(None, 2**70)),
    ),
    "deep_save_int_beyond_64_bits": (
        ValueNotStorableError,
        lambda e: e.save(Counter(None, -(2**64)), deep=True),
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_error_from_server_has_the_class_and_message_of_engine_error(
    case: str, local: Engine, client: RemoteEngine
) -> None:
    expected_class, action = CASES[case]

    local_error = error_of(local, action)
    remote_error = error_of(client, action)

    assert type(local_error) is expected_class
    assert type(remote_error) is expected_class
    assert str(remote_error) == str(local_error)


def test_client_works_after_an_error_reply(client: RemoteEngine) -> None:
    create_sports_tables(client)
    with pytest.raises(RowNotFoundError):
        client.find(League, 12345)

    saved = client.save(League(None, "Big"))

    assert client.find(League, saved.id) == saved
