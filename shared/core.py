"""The core engine: specs and primitive rows in, SQL on one connection, rows out.

The in-process `Engine` runs these functions on its own connection; the server runs
them on its connections with specs a client sent. Nothing here knows a model class
or converts a value. Callers own transactions except where a function says so.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .errors import RowNotFoundError, SchemaMismatchError, ValueNotStorableError
from .spec import TableSpec, quote

Row = tuple[Any, ...]
# A node of a deep save, children before parents: (spec key, id or None, values
# without id, [(index into values, index of the child node)]).
Node = tuple[str, "int | None", Sequence[Any], Sequence[Sequence[int]]]
# Rows of a deep load: spec key -> {id: row}.
Loaded = dict[str, dict[int, Row]]


def ensure_table(cursor: sqlite3.Cursor, spec: TableSpec) -> None:
    """Create the table of `spec`, or check that the existing one matches it.

    Raises SchemaMismatchError showing both schemas when they differ.
    """
    cursor.execute(spec.create_sql)
    table = quote(spec.table or spec.name)
    existing = cursor.execute(f"PRAGMA table_info({table})").fetchall()
    expected = _expected_table_info(cursor, spec)
    if [tuple(col[1:4]) + (col[5],) for col in existing] != expected:
        stored = cursor.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?",
            (spec.table,),
        ).fetchone()
        raise SchemaMismatchError(
            f"table {spec.table!r} exists with a different schema than model "
            f"{spec.name}.\n  in the database: {stored[0] if stored else '?'}\n"
            f"  the model wants: {spec.create_sql}\n"
            "Migrate the table (or use a new table name), or change the model "
            "to match the database."
        )


def _expected_table_info(
    cursor: sqlite3.Cursor, spec: TableSpec
) -> list[tuple[Any, ...]]:
    """What PRAGMA table_info shows for the spec's CREATE TABLE, via a temp table."""
    probe = quote(f"_mnsp_probe_{spec.key}")
    body = spec.create_sql.split("(", 1)[1]
    cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {probe} ({body}")
    rows = cursor.execute(f"PRAGMA temp.table_info({probe})").fetchall()
    cursor.execute(f"DROP TABLE temp.{probe}")
    return [tuple(col[1:4]) + (col[5],) for col in rows]


def insert_row(cursor: sqlite3.Cursor, spec: TableSpec, values: Sequence[Any]) -> int:
    """Insert one row (values without id) and return its new id."""
    try:
        cursor.execute(spec.insert_sql, values)
    except (OverflowError, sqlite3.ProgrammingError) as exc:
        raise not_storable_error(spec, values, exc) from exc
    except sqlite3.OperationalError as exc:
        error = missing_table_error(spec, exc)
        if error is None:
            raise
        raise error from exc
    return cursor.lastrowid  # type: ignore[return-value]


def update_row(
    cursor: sqlite3.Cursor, spec: TableSpec, row_id: int, values: Sequence[Any]
) -> None:
    """Overwrite the row `row_id`; RowNotFoundError if there is none."""
    try:
        cursor.execute(spec.update_sql, (*values, row_id))
    except (OverflowError, sqlite3.ProgrammingError) as exc:
        raise not_storable_error(spec, values, exc) from exc
    except sqlite3.OperationalError as exc:
        error = missing_table_error(spec, exc)
        if error is None:
            raise
        raise error from exc
    if cursor.rowcount != 1:
        raise RowNotFoundError(
            f"cannot update {spec.name} id={row_id}: no such row in table "
            f"{spec.table!r}. Save it with id=None to insert it."
        )


def delete_row(cursor: sqlite3.Cursor, spec: TableSpec, row_id: int) -> None:
    """Delete the row `row_id`; RowNotFoundError if there is none."""
    cursor.execute(spec.delete_sql, (row_id,))
    if cursor.rowcount != 1:
        raise RowNotFoundError(
            f"cannot delete {spec.name} id={row_id}: no such row in table "
            f"{spec.table!r}. It was deleted already, or never saved here."
        )


def fetch_row(cursor: sqlite3.Cursor, spec: TableSpec, row_id: int) -> Row:
    """The row `row_id` as stored; RowNotFoundError if there is none."""
    try:
        row = cursor.execute(spec.select_by_id_sql, (row_id,)).fetchone()
    except sqlite3.OperationalError as exc:
        error = missing_table_error(spec, exc)
        if error is None:
            raise
        raise error from exc
    if row is None:
        raise RowNotFoundError(
            f"{spec.name} has no row with id={row_id} in table {spec.table!r}. "
            "Use find_by or query when a row may be missing."
        )
    return row  # type: ignore[no-any-return]


def fetch_first_by(
    cursor: sqlite3.Cursor, spec: TableSpec, fields: Mapping[str, Any]
) -> Row | None:
    """The first row whose columns equal `fields` (already primitive), or None."""
    names = tuple(fields)
    values = tuple(fields.values())
    sql = spec.find_by_sql(names, tuple(value is None for value in values))
    try:
        return cursor.execute(sql, values).fetchone()  # type: ignore[no-any-return]
    except (OverflowError, sqlite3.ProgrammingError) as exc:
        raise not_storable_error(spec, values, exc, names) from exc
    except sqlite3.OperationalError as exc:
        error = missing_table_error(spec, exc)
        if error is None:
            raise
        raise error from exc


def save_many(
    cursor: sqlite3.Cursor,
    spec: TableSpec,
    rows: Iterable[tuple[int | None, Sequence[Any]]],
) -> list[int]:
    """Insert or update each (id, values); return the ids. Caller wraps atomically."""
    nodes = [(spec.key, row_id, values, ()) for row_id, values in rows]
    return save_nodes(cursor, {spec.key: spec}, nodes)


def save_nodes(
    cursor: sqlite3.Cursor, specs: Mapping[str, TableSpec], nodes: Sequence[Node]
) -> list[int]:
    """Save a flattened tree, children first, filling each reference from its child.

    Returns the id of every node, in order. Caller wraps it atomically.
    """
    ids: list[int] = []
    for key, row_id, values, refs in nodes:
        if refs:
            values = list(values)
            for value_index, node_index in refs:
                values[value_index] = ids[node_index]
        spec = specs[key]
        if row_id is None:
            ids.append(insert_row(cursor, spec, values))
        else:
            update_row(cursor, spec, row_id, values)
            ids.append(row_id)
    return ids


def load_related(
    cursor: sqlite3.Cursor,
    specs: Mapping[str, TableSpec],
    spec: TableSpec,
    rows: Sequence[Row],
) -> Loaded:
    """Every row that `rows` refer to, directly or not, one query per table per level.

    Returns spec key -> {id: row}. Rows already fetched are not fetched again, so
    cycles end. Iterative: tree depth does not touch the recursion limit.
    """
    loaded: Loaded = {}
    wanted = _referenced_ids(spec, rows, {})
    while wanted:
        next_wanted: dict[str, set[int]] = {}
        for key, ids in wanted.items():
            target = specs[key]
            seen = loaded.setdefault(key, {})
            fresh = [row_id for row_id in ids if row_id not in seen]
            if not fresh:
                continue
            found = cursor.execute(target.select_by_ids_sql, (json.dumps(fresh),))
            fetched = found.fetchall()
            seen.update({row[0]: row for row in fetched})
            _referenced_ids(target, fetched, next_wanted)
        wanted = next_wanted
    return loaded


def _referenced_ids(
    spec: TableSpec, rows: Sequence[Row], into: dict[str, set[int]]
) -> dict[str, set[int]]:
    """Add the ids each of `rows` refers to, by the referenced spec's key."""
    for column, key in spec.references:
        ids = {row[column] for row in rows}
        ids.discard(None)
        if ids:
            into.setdefault(key, set()).update(ids)
    return into


def not_storable_error(
    spec: TableSpec,
    values: Sequence[Any],
    exc: Exception,
    columns: Sequence[str] | None = None,
) -> ValueNotStorableError:
    """The error for values SQLite (or msgpack) refused, naming the column.

    `columns` name the values; by default, the spec's columns after the id.
    """
    if columns is None:
        columns = spec.columns[1:] if spec.has_id else spec.columns
    for column, value in zip(columns, values):
        if not isinstance(value, _SQLITE_TYPES):
            return ValueNotStorableError(
                f"{spec.name}.{column} = {value!r} is a {type(value).__name__}, "
                "which SQLite cannot store; give the field that type in the model "
                "(with a registered adapter), or convert the value first."
            )
        if not fits_sqlite(value):
            return ValueNotStorableError(
                f"{spec.name}.{column} = {value!r} does not fit SQLite's 64-bit "
                "integer; store it as str or register an adapter for a wider type."
            )
    return ValueNotStorableError(f"{spec.name}: a value cannot be stored: {exc}")


def missing_table_error(
    spec: TableSpec, exc: sqlite3.OperationalError
) -> SchemaMismatchError | None:
    """For "no such table" (also a table a foreign key names), what to do; else None."""
    if not str(exc).startswith("no such table"):
        return None
    missing = str(exc).rsplit(" ", 1)[-1].removeprefix("main.")
    return SchemaMismatchError(
        f"cannot use {spec.name}: table {missing!r} does not exist. Call "
        f"ensure_table_created on the {missing} model (and on every model "
        f"{spec.name} refers to) first."
    )


_SQLITE_TYPES = (type(None), int, float, str, bytes)


def fits_sqlite(value: Any) -> bool:
    """False for an int outside SQLite's (and msgpack's) signed 64-bit range."""
    return not isinstance(value, int) or -(2**63) <= value < 2**63
