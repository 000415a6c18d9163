"""The baseline: the notebook's workloads written by hand on `sqlite3`.

This is what a careful person writes without a library: constant SQL that the
`sqlite3` statement cache keeps prepared, plain tuples in and out, datetimes
turned into text with `isoformat` and back with `fromisoformat`, one commit after
each batch. The schema is the one `Engine` creates for the same models (column
types, NOT NULL, REFERENCES), and the connection has the same settings (WAL,
synchronous=NORMAL, foreign_keys=ON); `database_settings` lets the harness check
both before timing anything.

Rows are `(id, name, date, score)` tuples; tree nodes are
`(id, name, value, child_a, child_b)` tuples whose children are nodes or None.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Sequence
from typing import Any

Row = tuple[Any, ...]

CREATE_MYMODEL_SQL = (
    "CREATE TABLE MyModel (id INTEGER PRIMARY KEY, name TEXT NOT NULL, "
    "date TEXT NOT NULL, score REAL)"
)
CREATE_BOM_SQL = (
    "CREATE TABLE BOM (id INTEGER PRIMARY KEY, name TEXT NOT NULL, "
    "value REAL NOT NULL, child_a INTEGER REFERENCES BOM(id), "
    "child_b INTEGER REFERENCES BOM(id))"
)
INSERT_SQL = "INSERT INTO MyModel (name, date, score) VALUES (?, ?, ?)"
UPDATE_SQL = "UPDATE MyModel SET name = ?, date = ?, score = ? WHERE id = ?"
SELECT_BY_ID_SQL = "SELECT id, name, date, score FROM MyModel WHERE id = ?"
SELECT_BY_NAME_SQL = "SELECT id, name, date, score FROM MyModel WHERE name = ? LIMIT 1"
HIGH_SCORES_SQL = "SELECT id, name, date, score FROM MyModel WHERE score > 95.7"
DELETE_SQL = "DELETE FROM MyModel WHERE id = ?"
INSERT_NODE_SQL = "INSERT INTO BOM (name, value, child_a, child_b) VALUES (?, ?, ?, ?)"
SELECT_NODE_SQL = "SELECT id, name, value, child_a, child_b FROM BOM WHERE id = ?"
SELECT_NODES_SQL = "SELECT id, name, value, child_a, child_b FROM BOM WHERE id IN ({})"
NAME_INDEX_SQL = "CREATE INDEX MyModel_name ON MyModel (name)"


def database_settings(connection: sqlite3.Connection) -> dict[str, Any]:
    """The schema and connection settings that must match between contenders."""
    settings: dict[str, Any] = {}
    for pragma in ("journal_mode", "synchronous", "foreign_keys"):
        settings[pragma] = connection.execute(f"PRAGMA {pragma}").fetchone()[0]
    for table in ("MyModel", "BOM"):
        settings[f"{table} columns"] = connection.execute(
            f"PRAGMA table_info({table})"
        ).fetchall()
        settings[f"{table} references"] = [
            row[2:5] for row in connection.execute(f"PRAGMA foreign_key_list({table})")
        ]
    return settings


class HandWrittenSqlite:
    """The notebook's workloads on one `sqlite3` connection, without the library."""

    def __init__(self, path: str) -> None:
        self.connection = sqlite3.connect(path)
        self.connection.execute("PRAGMA journal_mode=WAL")
        self.connection.execute("PRAGMA synchronous=NORMAL")
        self.connection.execute("PRAGMA foreign_keys=ON")
        self.connection.execute(CREATE_MYMODEL_SQL)
        self.connection.execute(CREATE_BOM_SQL)
        self.connection.commit()
        self.cursor = self.connection.cursor()
        self.max_params = self.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        self.root_id: int | None = None

    def close(self) -> None:
        self.connection.close()

    def insert(self, rows: Sequence[Row]) -> list[Row]:
        cursor = self.cursor
        saved = []
        for _, name, date, score in rows:
            cursor.execute(INSERT_SQL, (name, date.isoformat(), score))
            saved.append((cursor.lastrowid, name, date, score))
        self.connection.commit()
        return saved

    def update(self, rows: Sequence[Row]) -> list[Row]:
        cursor = self.cursor
        for row_id, name, date, score in rows:
            cursor.execute(UPDATE_SQL, (name, date.isoformat(), score, row_id))
        self.connection.commit()
        return list(rows)

    def find(self, ids: Sequence[int]) -> list[Row]:
        cursor = self.cursor
        fromisoformat = dt.datetime.fromisoformat
        found = []
        for row_id in ids:
            _, name, date, score = cursor.execute(
                SELECT_BY_ID_SQL, (row_id,)
            ).fetchone()
            found.append((row_id, name, fromisoformat(date), score))
        return found

    def create_name_index(self) -> None:
        self.connection.execute(NAME_INDEX_SQL)
        self.connection.commit()

    def find_by_name(self, names: Sequence[str]) -> list[Row | None]:
        cursor = self.cursor
        fromisoformat = dt.datetime.fromisoformat
        found: list[Row | None] = []
        for name in names:
            row = cursor.execute(SELECT_BY_NAME_SQL, (name,)).fetchone()
            if row is None:
                found.append(None)
                continue
            row_id, name, date, score = row
            found.append((row_id, name, fromisoformat(date), score))
        return found

    def select_high_scores(self, repeats: int) -> list[list[Row]]:
        fromisoformat = dt.datetime.fromisoformat
        answers = []
        for _ in range(repeats):
            rows = self.cursor.execute(HIGH_SCORES_SQL).fetchall()
            answers.append([(i, n, fromisoformat(d), s) for i, n, d, s in rows])
        return answers

    def delete(self, ids: Sequence[int]) -> None:
        cursor = self.cursor
        for row_id in ids:
            cursor.execute(DELETE_SQL, (row_id,))
        self.connection.commit()

    def deep_save(self, root: Row) -> Row:
        """Save the tree children first (recursion is fine 13 levels deep)."""
        saved = self._save_node(root)
        self.connection.commit()
        self.root_id = saved[0]
        return saved

    def _save_node(self, node: Row) -> Row:
        _, name, value, child_a, child_b = node
        saved_a = None if child_a is None else self._save_node(child_a)
        saved_b = None if child_b is None else self._save_node(child_b)
        self.cursor.execute(
            INSERT_NODE_SQL,
            (
                name,
                value,
                None if saved_a is None else saved_a[0],
                None if saved_b is None else saved_b[0],
            ),
        )
        return (self.cursor.lastrowid, name, value, saved_a, saved_b)

    def deep_find(self) -> Row:
        """Load the saved tree one query per level (`id IN (...)`), then build it."""
        levels = []
        wanted: list[int] = [self._root()]
        while wanted:
            level = self._fetch_nodes(wanted)
            levels.append(level)
            wanted = [
                child
                for row in level
                for child in (row[3], row[4])
                if child is not None
            ]
        built: dict[int, Row] = {}
        for level in reversed(levels):
            for row_id, name, value, child_a, child_b in level:
                built[row_id] = (
                    row_id,
                    name,
                    value,
                    None if child_a is None else built[child_a],
                    None if child_b is None else built[child_b],
                )
        return built[self._root()]

    def _fetch_nodes(self, ids: list[int]) -> list[Row]:
        rows: list[Row] = []
        for start in range(0, len(ids), self.max_params):
            chunk = ids[start : start + self.max_params]
            sql = SELECT_NODES_SQL.format(", ".join("?" * len(chunk)))
            rows += self.cursor.execute(sql, chunk).fetchall()
        return rows

    def deep_find_per_node(self) -> Row:
        """Load the saved tree the naive way: one query per node, recursively."""
        return self._load_node(self._root())

    def _load_node(self, row_id: int) -> Row:
        _, name, value, child_a, child_b = self.cursor.execute(
            SELECT_NODE_SQL, (row_id,)
        ).fetchone()
        return (
            row_id,
            name,
            value,
            None if child_a is None else self._load_node(child_a),
            None if child_b is None else self._load_node(child_b),
        )

    def _root(self) -> int:
        if self.root_id is None:
            raise RuntimeError("deep_find needs a tree: run deep_save first.")
        return self.root_id
