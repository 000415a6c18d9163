"""What each operation does to a connection, given the specs clients registered.

Handlers take a cursor and the request's arguments (already msgpack-decoded) and
return a msgpack-able result. They check argument shapes, so a malformed request
becomes a ProtocolError reply instead of an exception deep in the core.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from functools import partial
from typing import Any

from micro_namedtuple_sqlite_persister import core
from micro_namedtuple_sqlite_persister.errors import (
    ProtocolError,
    TransactionError,
    UnknownModelError,
)
from micro_namedtuple_sqlite_persister.spec import TableSpec

Handler = Callable[[sqlite3.Cursor, list[Any]], Any]
TRANSACTION_SQL_REFUSED = (
    "BEGIN, COMMIT, ROLLBACK, SAVEPOINT and RELEASE cannot be sent as SQL: the "
    "server runs each request in a transaction it shares with other clients. "
    "Use transaction() to make several requests commit or roll back together."
)


class Handlers:
    """The operations on the database, by name, over a shared spec registry."""

    def __init__(self, specs: dict[str, TableSpec]) -> None:
        self.specs = specs
        self.by_op: dict[str, Handler] = {
            "ensure_table": self.ensure_table,
            "save": self.save,
            "save_many": self.save_many,
            "save_nodes": self.save_nodes,
            "delete": self.delete,
            "execute": self.execute,
            "find": self.find,
            "find_by": self.find_by,
        }

    def spec(self, key: Any) -> TableSpec:
        spec = self.specs.get(key) if isinstance(key, str) else None
        if spec is None:
            raise UnknownModelError(
                f"the server does not know model {key!r}; register it first."
            )
        return spec

    def register(self, spec_list: list[Any]) -> list[str]:
        """Store each wire spec; return their keys."""
        keys = []
        for data in spec_list:
            spec = TableSpec.from_wire(data)
            self.specs[spec.key] = spec
            keys.append(spec.key)
        return keys

    def ensure_table(self, cursor: sqlite3.Cursor, args: list[Any]) -> None:
        (key,) = _expect(args, 1)
        core.ensure_table(cursor, self.spec(key))

    def save(self, cursor: sqlite3.Cursor, args: list[Any]) -> int:
        key, row_id, values = _expect(args, 3)
        spec = self.spec(key)
        _check_values(spec, values)
        if row_id is None:
            return core.insert_row(cursor, spec, values)
        core.update_row(cursor, spec, _int(row_id), values)
        return row_id  # type: ignore[no-any-return]

    def save_many(self, cursor: sqlite3.Cursor, args: list[Any]) -> list[int]:
        key, rows = _expect(args, 2)
        spec = self.spec(key)
        pairs = []
        for row_id, values in _list(rows):
            _check_values(spec, values)
            pairs.append((None if row_id is None else _int(row_id), values))
        return core.save_many(cursor, spec, pairs)

    def save_nodes(self, cursor: sqlite3.Cursor, args: list[Any]) -> list[int]:
        (nodes,) = _expect(args, 1)
        checked = []
        for index, (key, row_id, values, refs) in enumerate(_list(nodes)):
            spec = self.spec(key)
            _check_values(spec, values)
            for value_index, node_index in _list(refs):
                if not 0 <= _int(value_index) < len(values):
                    raise ProtocolError("deep save reference outside the row")
                if not 0 <= _int(node_index) < index:
                    raise ProtocolError("deep save reference to a later node")
            checked.append((key, row_id, values, refs))
        return core.save_nodes(cursor, self.specs, checked)

    def delete(self, cursor: sqlite3.Cursor, args: list[Any]) -> None:
        key, row_id = _expect(args, 2)
        core.delete_row(cursor, self.spec(key), _int(row_id))

    def execute(self, cursor: sqlite3.Cursor, args: list[Any]) -> list[Any]:
        """Run SQL that may write; return all its rows (a write returns few).

        Raises TransactionError for BEGIN, COMMIT, ROLLBACK, SAVEPOINT and RELEASE.
        The writer runs this request in a savepoint of a transaction it shares
        with other clients' writes: such a statement would end or undo theirs.
        """
        sql, params = _expect(args, 2)
        refused: list[int] = []
        # The authorizer sees each statement as SQLite compiles it, whatever its
        # spelling or comments. It is set only around the client's SQL, as the
        # writer's own statements must run; setting one re-prepares cached ones.
        cursor.connection.set_authorizer(partial(_refuse_transaction_control, refused))
        try:
            return cursor.execute(_str(sql), _params(params)).fetchall()
        except sqlite3.DatabaseError as exc:
            if refused:
                raise TransactionError(TRANSACTION_SQL_REFUSED) from exc
            raise
        finally:
            cursor.connection.set_authorizer(None)

    def find(self, cursor: sqlite3.Cursor, args: list[Any]) -> Any:
        """[row] or, deep, [row, related rows by spec key]."""
        key, row_id, is_deep = _expect(args, 3)
        spec = self.spec(key)
        row = core.fetch_row(cursor, spec, _int(row_id))
        if not is_deep:
            return [row]
        return [row, self.load_related(cursor, spec, [row])]

    def find_by(self, cursor: sqlite3.Cursor, args: list[Any]) -> Any:
        key, fields = _expect(args, 2)
        spec = self.spec(key)
        if not isinstance(fields, dict) or not fields:
            raise ProtocolError("find_by fields must be a non-empty map")
        unknown = [name for name in fields if name not in spec.columns]
        if unknown:
            raise ProtocolError(f"find_by: {spec.name} has no column {unknown[0]!r}")
        return core.fetch_first_by(cursor, spec, fields)

    def load_related(
        self, cursor: sqlite3.Cursor, spec: TableSpec, rows: list[Any]
    ) -> dict[str, list[Any]]:
        for _, key in spec.references:
            self.spec(key)
        loaded = core.load_related(cursor, self.specs, spec, rows)
        return {key: list(by_id.values()) for key, by_id in loaded.items()}


def _refuse_transaction_control(refused: list[int], action: int, *_: Any) -> int:
    if action in (sqlite3.SQLITE_TRANSACTION, sqlite3.SQLITE_SAVEPOINT):
        refused.append(action)
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def _expect(args: list[Any], count: int) -> list[Any]:
    if len(args) != count:
        raise ProtocolError(f"expected {count} arguments, got {len(args)}")
    return args


def _int(value: Any) -> int:
    if type(value) is not int:
        raise ProtocolError(f"expected an integer id, got {type(value).__name__}")
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise ProtocolError(f"expected SQL text, got {type(value).__name__}")
    return value


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ProtocolError(f"expected an array, got {type(value).__name__}")
    return value


def _params(value: Any) -> Any:
    if not isinstance(value, list | dict):
        raise ProtocolError("query parameters must be an array or a map")
    return value


def _check_values(spec: TableSpec, values: Any) -> None:
    expected = len(spec.columns) - (1 if spec.has_id else 0)
    if not isinstance(values, list) or len(values) != expected:
        raise ProtocolError(f"{spec.name} rows carry {expected} values without id")
