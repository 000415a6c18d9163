"""`TableSpec`: what the core engine needs to know about a model, as plain data.

A spec holds names, SQL column declarations and which columns refer to which other
specs; no Python types. It is built from a model in the client (see `model.py`),
sent to the server as a list of primitives, and identified by a fingerprint `key`.
"""

from __future__ import annotations

import hashlib
from typing import Any

from .errors import ProtocolError


def quote(name: str) -> str:
    """`name` as a SQL identifier in double quotes, so keywords like Order work."""
    return '"' + name.replace('"', '""') + '"'


class TableSpec:
    """One model's table: columns, their declarations and references.

    `table` is None for a table-less model (a query result shape). `references`
    pairs a column index with the key of the spec that column refers to.
    """

    __slots__ = (
        "key",
        "name",
        "table",
        "columns",
        "declarations",
        "references",
        "has_id",
        "create_sql",
        "insert_sql",
        "update_sql",
        "select_sql",
        "select_by_id_sql",
        "select_by_ids_sql",
        "delete_sql",
        "_find_by_sql",
    )

    def __init__(
        self,
        name: str,
        table: str | None,
        columns: tuple[str, ...],
        declarations: tuple[str, ...],
        references: tuple[tuple[int, str], ...],
    ) -> None:
        self.name = name
        self.table = table
        self.columns = columns
        self.declarations = declarations
        self.references = references
        self.key = fingerprint(name, table, columns, declarations)
        self.has_id = table is not None and bool(columns) and columns[0] == "id"
        self._find_by_sql: dict[tuple[tuple[str, ...], tuple[bool, ...]], str] = {}
        self._build_sql()

    def _build_sql(self) -> None:
        table = quote(self.table or self.name)
        names = [quote(column) for column in self.columns]
        column_list = ", ".join(names)
        self.create_sql = (
            f"CREATE TABLE IF NOT EXISTS {table} ("
            + ", ".join(
                f"{name} {decl}" for name, decl in zip(names, self.declarations)
            )
            + ")"
        )
        self.insert_sql = (
            f"INSERT INTO {table} ({', '.join(names[1:])}) "
            f"VALUES ({', '.join('?' * (len(names) - 1))})"
        )
        self.update_sql = (
            f"UPDATE {table} SET {', '.join(f'{name} = ?' for name in names[1:])} "
            'WHERE "id" = ?'
        )
        self.select_sql = f"SELECT {column_list} FROM {table}"
        self.select_by_id_sql = f'{self.select_sql} WHERE "id" = ?'
        self.select_by_ids_sql = (
            f'{self.select_sql} WHERE "id" IN (SELECT value FROM json_each(?))'
        )
        self.delete_sql = f'DELETE FROM {table} WHERE "id" = ?'

    def find_by_sql(self, names: tuple[str, ...], null_flags: tuple[bool, ...]) -> str:
        """SELECT of the first row whose named columns equal the given values."""
        cache_key = (names, null_flags)
        sql = self._find_by_sql.get(cache_key)
        if sql is None:
            conditions = " AND ".join(
                f"{quote(name)} {'IS' if is_null else '='} ?"
                for name, is_null in zip(names, null_flags)
            )
            sql = f"{self.select_sql} WHERE {conditions} LIMIT 1"
            self._find_by_sql[cache_key] = sql
        return sql

    def to_wire(self) -> list[Any]:
        """This spec as msgpack-able primitives; `from_wire` reverses it."""
        references = [list(pair) for pair in self.references]
        return [
            self.name,
            self.table,
            list(self.columns),
            list(self.declarations),
            references,
        ]

    @classmethod
    def from_wire(cls, data: Any) -> TableSpec:
        """Rebuild a spec sent by a client; ProtocolError if it is not well formed."""
        try:
            name, table, columns, declarations, references = data
            is_valid = (
                isinstance(name, str)
                and (table is None or isinstance(table, str))
                and _is_str_list(columns)
                and _is_str_list(declarations)
                and len(columns) == len(declarations)
                and all(
                    isinstance(index, int)
                    and 0 <= index < len(columns)
                    and isinstance(key, str)
                    for index, key in references
                )
            )
        except (TypeError, ValueError) as exc:
            raise ProtocolError(f"malformed table spec: {exc}") from exc
        if not is_valid:
            raise ProtocolError("malformed table spec: wrong field types")
        pairs = tuple((index, key) for index, key in references)
        return cls(name, table, tuple(columns), tuple(declarations), pairs)

    def __repr__(self) -> str:
        return f"TableSpec({self.name!r}, table={self.table!r}, key={self.key!r})"


def fingerprint(
    name: str,
    table: str | None,
    columns: tuple[str, ...],
    declarations: tuple[str, ...],
) -> str:
    """A short stable hash of a spec's content, its identity on the wire."""
    text = repr((name, table, columns, declarations))
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)
