"""Small checks on SQLite state used by several library test files."""

from __future__ import annotations

import sqlite3


def select_statements(statements: list[str]) -> list[str]:
    return [sql for sql in statements if sql.lstrip().upper().startswith("SELECT")]


def count_rows(connection: sqlite3.Connection, table: str) -> int:
    quoted = '"' + table + '"'
    return connection.execute(f"SELECT count(*) FROM {quoted}").fetchone()[0]
