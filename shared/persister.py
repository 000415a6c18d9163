"""`Engine`: models saved, found, deleted and queried on an in-process connection.

Conversion (model.py, convert.py) plus the core engine (core.py) on one
`sqlite3.Connection`. Writes open a transaction implicitly, as in `sqlite3`;
call `engine.commit()` (or `engine.connection.commit()`) to make them durable and
visible to other connections, or use `with engine.transaction():`.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from . import core
from .convert import (
    column_count_error,
    encode_params,
    encode_value,
    explain_decode_error,
)
from .errors import InvalidFieldError, RowNotFoundError, TransactionError
from .lazy import LazyRow
from .model import ModelMeta, _meta, get_meta
from .tree import (
    build_deep,
    explain_save_error,
    related_models,
    save_tree,
)

M = TypeVar("M")
SYNCHRONOUS_LEVELS = ("off", "normal", "full", "extra")


class Engine:
    """Creates tables for models and saves, finds, deletes and queries their rows.

    `path` is a file (opened in WAL mode) or ":memory:". `connection` is the real
    `sqlite3.Connection`. An Engine, like its connection, belongs to the thread
    that created it.
    """

    def __init__(
        self, path: str, *, synchronous: str = "normal", timeout: float = 5.0
    ) -> None:
        if synchronous not in SYNCHRONOUS_LEVELS:
            raise ValueError(
                f"synchronous={synchronous!r}; expected one of {SYNCHRONOUS_LEVELS}"
            )
        self.path = path
        self.connection = sqlite3.connect(path, timeout=timeout)
        if path != ":memory:" and not path.startswith("file::memory:"):
            self.connection.execute("PRAGMA journal_mode=WAL")
        self.connection.execute(f"PRAGMA synchronous={synchronous}")
        self.connection.execute("PRAGMA foreign_keys=ON")
        self._cursor = self.connection.cursor()
        self._specs: dict[str, core.TableSpec] = {}
        self._savepoints = 0

    # -- tables ---------------------------------------------------------------

    def ensure_table_created(self, model: type) -> None:
        """Create `model`'s table, or check the existing one has the same schema.

        Raises InvalidTableModelError for a model that cannot be a table and
        SchemaMismatchError (showing both schemas) for a different existing table.
        """
        meta = get_meta(model)
        meta.require_table()
        core.ensure_table(self._cursor, meta.spec)

    # -- writes ---------------------------------------------------------------

    def save(self, row: M, deep: bool = False) -> M:
        """Insert `row` if its id is None, else update it; return it with its id.

        With `deep=True`, related rows are saved first (inserted or updated) in
        one savepoint, and the whole tree comes back with ids; without it, a
        related row with no id raises UnsavedRelatedRowError. Updating a missing
        id raises RowNotFoundError. Nothing is written when an error is raised.
        """
        meta = _meta.get(type(row)) or get_meta(type(row))
        if deep:
            return self._save_deep(row)
        if meta.table_error is not None:
            meta.require_table()
        try:
            return meta.save_row(row, self._cursor)  # type: ignore[no-any-return]
        except Exception as exc:
            raise explain_save_error(meta, row, exc) from exc

    def _save_deep(self, root: M) -> M:
        # The client sends the same children-first order as flat nodes instead.
        with self._savepoint():
            return save_tree(root, {}, self._cursor)  # type: ignore[no-any-return]

    def save_many(self, rows: Sequence[M], deep: bool = False) -> list[M]:
        """Save every row (as `save` does) atomically: all are written, or none."""
        with self._savepoint():
            return [self.save(row, deep=deep) for row in rows]

    def delete(self, model_or_row: Any, id: int | None = None) -> None:
        """Delete by `delete(Model, id)` or `delete(row)`; RowNotFoundError if none."""
        if id is None:
            model, id = type(model_or_row), model_or_row[0]
        else:
            model = model_or_row
        meta = get_meta(model)
        meta.require_table()
        if id is None:
            raise RowNotFoundError(
                f"cannot delete a {meta.name} with id=None: it was never saved."
            )
        core.delete_row(self._cursor, meta.spec, id)

    # -- reads ----------------------------------------------------------------

    def find(self, model: type[M], id: int, deep: bool = False) -> M:
        """The row of `model` with this id; RowNotFoundError if there is none.

        Related rows load lazily when an attribute of theirs is read, or all at
        once, level by level, with `deep=True`.
        """
        meta = _meta.get(model) or get_meta(model)
        if meta.table_error is not None:
            meta.require_table()
        if id is None:
            raise RowNotFoundError(
                f"find({meta.name}, None): a row that was never saved has no id."
            )
        values = core.fetch_row(self._cursor, meta.spec, id)
        if deep and meta.related:
            return self._build_deep(meta, [values])[0]  # type: ignore[no-any-return]
        return decode_checked(meta, values, self._lazy)  # type: ignore[no-any-return]

    def find_by(self, model: type[M], **fields: Any) -> M | None:
        """The first row whose fields equal the given values, or None.

        Raises InvalidFieldError when no field or an unknown field is given.
        """
        meta = get_meta(model)
        meta.require_table()
        values = encode_fields(meta, fields)
        row = core.fetch_first_by(self._cursor, meta.spec, values)
        return None if row is None else decode_checked(meta, row, self._lazy)  # type: ignore[no-any-return]

    def query(
        self,
        model: type[M],
        sql: str,
        params: Sequence[Any] | Mapping[str, Any] = (),
        deep: bool = False,
    ) -> ModelCursor[M]:
        """Run `sql`; the cursor's fetchone/fetchmany/fetchall give `model` rows.

        Without `deep`, this is the real `sqlite3.Cursor` with a row factory.
        A result whose column count differs from the model's fields raises
        ColumnCountMismatchError when a row is built, not before.
        """
        meta = get_meta(model)
        cursor = self.connection.cursor()
        if not deep or not meta.related:
            lazy = self._lazy
            cursor.row_factory = lambda _, values: decode_checked(meta, values, lazy)
            return cursor.execute(sql, encode_params(params))  # type: ignore[return-value]
        found = cursor.execute(sql, encode_params(params))
        return DeepCursor(found, meta, self._build_deep)  # type: ignore[return-value]

    # -- transactions -----------------------------------------------------------

    def commit(self) -> None:
        """Commit the open transaction, making its writes durable and visible."""
        self.connection.commit()

    def rollback(self) -> None:
        """Roll back the open transaction."""
        self.connection.rollback()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything inside commits together at the end, or rolls back on error."""
        if self._savepoints:
            raise TransactionError("transaction() cannot be nested inside another.")
        if self.connection.in_transaction:
            self.connection.commit()
        self.connection.execute("BEGIN IMMEDIATE")
        self._savepoints += 1
        try:
            yield
        except BaseException:
            self.connection.rollback()
            raise
        else:
            self.connection.commit()
        finally:
            self._savepoints -= 1

    def close(self) -> None:
        """Close the connection; uncommitted writes are rolled back."""
        self.connection.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- helpers ----------------------------------------------------------------

    def _lazy(self, model: type, id: int) -> LazyRow:
        return LazyRow(self, model, id)

    @contextlib.contextmanager
    def _savepoint(self) -> Iterator[None]:
        """Atomic block inside the caller's transaction (one is opened if none is)."""
        if not self.connection.in_transaction:
            self.connection.execute("BEGIN")
        self._cursor.execute("SAVEPOINT mnsp_atomic")
        try:
            yield
        except BaseException:
            self._cursor.execute("ROLLBACK TO mnsp_atomic")
            self._cursor.execute("RELEASE mnsp_atomic")
            raise
        self._cursor.execute("RELEASE mnsp_atomic")

    def _build_deep(self, meta: ModelMeta, rows: list[core.Row]) -> list[Any]:
        # Checked before loading: related ids are read by column position.
        for values in rows:
            if len(values) != len(meta.fields):
                raise column_count_error(meta, len(values))
        specs = {m.spec.key: m.spec for m in related_models(meta.model)}
        loaded = core.load_related(self._cursor, specs, meta.spec, rows)
        return build_deep(meta, rows, loaded, decode_checked, self._lazy)


class ModelCursor(Protocol[M]):
    """The type of `query`'s result: a cursor whose rows are `M` instances."""

    def fetchone(self) -> M | None: ...
    def fetchmany(self, size: int = ...) -> list[M]: ...
    def fetchall(self) -> list[M]: ...
    def __iter__(self) -> Iterator[M]: ...


class DeepCursor:
    """A cursor over rows loaded with all their related rows (query(..., deep=True)).

    Each fetch loads the related rows of the rows it returns in one pass.
    """

    def __init__(
        self,
        cursor: sqlite3.Cursor,
        meta: ModelMeta,
        build: Callable[[ModelMeta, list[core.Row]], list[Any]],
    ) -> None:
        self._cursor = cursor
        self._meta = meta
        self._build = build
        self.arraysize = cursor.arraysize

    def fetchone(self) -> Any:
        rows = self.fetchmany(1)
        return rows[0] if rows else None

    def fetchmany(self, size: int | None = None) -> list[Any]:
        rows = self._cursor.fetchmany(size or self.arraysize)
        return self._build(self._meta, rows) if rows else []

    def fetchall(self) -> list[Any]:
        rows = self._cursor.fetchall()
        return self._build(self._meta, rows) if rows else []

    def __iter__(self) -> Iterator[Any]:
        while rows := self.fetchmany(500):
            yield from rows

    def close(self) -> None:
        self._cursor.close()


def decode_checked(
    meta: ModelMeta, values: Any, ref: Callable[[type, int], Any]
) -> Any:
    """`meta.decode` with a clear error for the wrong column count or a bad value."""
    try:
        return meta.decode(values, ref)
    except Exception as exc:
        raise explain_decode_error(meta, values, exc) from exc


def encode_fields(meta: ModelMeta, fields: Mapping[str, Any]) -> dict[str, Any]:
    """`find_by`'s keyword arguments as primitive column values, checked by name."""
    if not fields:
        raise InvalidFieldError(
            f"find_by({meta.name}) needs at least one field=value; fields: "
            f"{', '.join(meta.field_names)}."
        )
    encoded = {}
    for name, value in fields.items():
        field = meta.field(name)
        if field is None:
            raise InvalidFieldError(
                f"{meta.name} has no field {name!r}; fields: "
                f"{', '.join(meta.field_names)}."
            )
        encoded[name] = encode_value(meta, field, value)
    return encoded
