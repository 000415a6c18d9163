"""Value conversion between model rows and SQLite primitives, one place for both sides.

For each model we generate small functions, the way `collections.namedtuple`
generates its class: a loop over fields per row costs more than the SQLite call
itself on the hot path, and a straight-line function costs almost nothing.

- `encode(row)`: the values of a table model's row without its id, as primitives;
  a related row becomes its id (UnsavedRelatedRowError if it has none).
- `encode_deep(row)`: the same, with related fields left None for a deep save to fill.
- `decode(values, ref)`: a model instance from stored values; each related id
  becomes `ref(RelatedModel, id)` (a lazy row, or an already loaded one).
- `decode_loaded(values, ref, built)`: the same for a deep load, where `built`
  holds, for each related field in order, a dict of the rows built so far by id;
  `ref` is called only for an id not in it.
- `save_row(row, cursor)`: `Engine.save` of one row: insert (returns the row with
  its new id) or update (returns the row); related rows must have ids.
- `save_tree(row, saved, cursor, depth)`: an in-process deep save of the row and
  its unsaved related rows, children first, recursing at most `depth` rows down
  (TreeTooDeep below that). `saved` maps id(row object) -> the row as saved; a
  row found there is not saved again. Returns the saved row. A related row of
  the same model (a tree) is saved by a direct call, others through their model.

The save functions run their one statement inline: a call less per row is what
brings the Engine near hand-written sqlite3 speed. `save_row`'s errors are raw
(sqlite3's, the adapter's), and `save_tree` wraps them in RowSaveFailed, naming
the row; `tree.explain_save_error` turns both into ours.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from .adaptconvert import find_adapt_convert
from .core import update_row
from .errors import (
    ColumnCountMismatchError,
    UnsavedRelatedRowError,
    ValueNotStorableError,
)
from .lazy import LazyRow
from .model import FieldInfo, FieldKind, ModelMeta, _meta, get_meta, is_model

Encoder = Callable[[Any], tuple[Any, ...]]
Decoder = Callable[[Any, Callable[[type, int], Any]], Any]
LoadedDecoder = Callable[
    [Any, Callable[[type, int], Any], tuple[dict[int, Any], ...]], Any
]
TreeSaver = Callable[[Any, dict[int, Any], sqlite3.Cursor, int], Any]
RowSaver = Callable[[Any, sqlite3.Cursor], Any]


class Codecs(NamedTuple):
    encode: Encoder
    encode_deep: Encoder
    decode: Decoder
    decode_loaded: LoadedDecoder
    save_tree: TreeSaver
    save_row: RowSaver


# What a related field may hold that a deep save does not visit: no row, an id,
# or a row loaded from the database (saved already).
SAVED_ALREADY: frozenset[type] = frozenset({type(None), int, LazyRow})


class TreeTooDeep(Exception):
    """A deep save reached its recursion depth; finish it without recursing."""


class RowSaveFailed(Exception):
    """Storing `row` (of `meta`) in a deep save raised `error`."""

    def __init__(self, meta: ModelMeta, row: Any, error: Exception) -> None:
        super().__init__(meta, row, error)
        self.meta, self.row, self.error = meta, row, error


def _save_related(
    row: Any, saved: dict[int, Any], cursor: sqlite3.Cursor, depth: int
) -> Any:
    """`save_tree` of a related row not saved yet, whatever its model."""
    if not depth:
        raise TreeTooDeep
    meta = _meta.get(row.__class__)
    if meta is None or meta.table_error is not None:
        meta = get_meta(row.__class__)
        meta.require_table()
    return meta.save_tree(row, saved, cursor, depth - 1)


def compile_codecs(meta: ModelMeta) -> Codecs:
    """Generate the conversion functions of one model."""
    namespace: dict[str, Any] = {
        "_new": tuple.__new__,
        "_cls": meta.model,
        "_saved_already": SAVED_ALREADY,
        "_insert_sql": meta.spec.insert_sql,
        "_update_row": update_row,
        "_spec": meta.spec,
        "_self": meta,
        "_save_related": _save_related,
        "_failed": RowSaveFailed,
    }
    names = [f"v{index}" for index in range(len(meta.fields))]
    encoded, encoded_deep, encoded_saved, decoded = [], [], [], []
    decoded_loaded, built_names = [], []
    # For each related field of a deep save: its stored id, and the saved child.
    swap_saved = []
    for index, field in enumerate(meta.fields):
        value = names[index]
        if field.kind is FieldKind.CONVERTED:
            assert field.adapt_convert is not None
            namespace[f"adapt{index}"] = field.adapt_convert.adapt
            namespace[f"convert{index}"] = field.adapt_convert.convert
            encoded.append(f"(adapt{index}({value}) if {value} is not None else None)")
            decoded.append(
                f"(convert{index}({value}) if {value} is not None else None)"
            )
            encoded_deep.append(encoded[-1])
            encoded_saved.append(encoded[-1])
            decoded_loaded.append(decoded[-1])
        elif field.kind is FieldKind.RELATED:
            namespace[f"related_id{index}"] = _related_id_getter(meta.name, field)
            namespace[f"model{index}"] = field.related
            encoded.append(f"related_id{index}({value})")
            decoded.append(
                f"(ref(model{index}, {value}) if {value} is not None else None)"
            )
            built_names.append(f"built{index}")
            decoded_loaded.append(
                f"(None if {value} is None else built{index}[{value}] "
                f"if {value} in built{index} else ref(model{index}, {value}))"
            )
            encoded_deep.append("None")
            encoded_saved.append(f"id{index}")
            swap_saved.append(
                f"    if {value} is None:\n"
                f"        id{index} = None\n"
                f"    elif {value}.__class__ in _saved_already:\n"
                f"        id{index} = related_id{index}({value})\n"
                f"    else:\n"
                f"        done = saved.get(id({value}))\n"
                f"        if done is None:\n"
                f"            if {value}.__class__ is _cls and depth:\n"
                f"                done = save_tree({value}, saved, cursor, depth - 1)\n"
                f"            else:\n"
                f"                done = _save_related({value}, saved, cursor, depth)\n"
                f"        {value} = done\n"
                f"        id{index} = done[0]\n"
            )
        else:
            encoded.append(value)
            decoded.append(value)
            encoded_deep.append(value)
            encoded_saved.append(value)
            decoded_loaded.append(value)
    unpack = ", ".join(names) + ","
    unpack_built = f"    {_tuple(built_names)}= built\n" if built_names else ""
    source = (
        f"def encode(row):\n    {unpack} = row\n    return ({_tuple(encoded[1:])})\n"
        f"def encode_deep(row):\n    {unpack} = row\n"
        f"    return ({_tuple(encoded_deep[1:])})\n"
        f"def decode(row, ref):\n    {unpack} = row\n"
        f"    return _new(_cls, ({_tuple(decoded)}))\n"
        f"def decode_loaded(row, ref, built):\n    {unpack} = row\n"
        f"{unpack_built}"
        f"    return _new(_cls, ({_tuple(decoded_loaded)}))\n"
        f"def save_tree(row, saved, cursor, depth):\n    {unpack} = row\n"
        f"{''.join(swap_saved)}    try:\n"
        f"        values = ({_tuple(encoded_saved[1:])})\n"
        "        if v0 is None:\n"
        "            v0 = cursor.execute(_insert_sql, values).lastrowid\n"
        "        else:\n"
        "            _update_row(cursor, _spec, v0, values)\n"
        "    except Exception as exc:\n"
        "        raise _failed(_self, row, exc) from exc\n"
        f"    saved[id(row)] = new = _new(_cls, ({_tuple(names)}))\n"
        "    return new\n"
        f"def save_row(row, cursor):\n    {unpack} = row\n"
        f"    values = ({_tuple(encoded[1:])})\n"
        "    if v0 is None:\n"
        "        v0 = cursor.execute(_insert_sql, values).lastrowid\n"
        f"        return _new(_cls, ({_tuple(names)}))\n"
        "    _update_row(cursor, _spec, v0, values)\n"
        "    return row\n"
    )
    exec(compile(source, f"<codecs of {meta.name}>", "exec"), namespace)
    return Codecs(
        namespace["encode"],
        namespace["encode_deep"],
        namespace["decode"],
        namespace["decode_loaded"],
        namespace["save_tree"],
        namespace["save_row"],
    )


def _tuple(parts: list[str]) -> str:
    return "".join(part + ", " for part in parts)


def _related_id_getter(model_name: str, field: FieldInfo) -> Callable[[Any], Any]:
    def related_id(value: Any) -> Any:
        if value is None or type(value) is int:
            return value
        row_id = value.id
        if row_id is None:
            raise UnsavedRelatedRowError(
                f"{model_name}.{field.name} refers to a {type(value).__name__} that "
                "has no id yet. Save that row first, or call save(row, deep=True)."
            )
        return row_id

    return related_id


def encode_value(meta: ModelMeta, field: FieldInfo, value: Any) -> Any:
    """One field's value as a primitive (for find_by); None stays None."""
    if value is None or field.kind in (FieldKind.PLAIN, FieldKind.ANY):
        return value
    if field.kind is FieldKind.RELATED:
        return _related_id_getter(meta.name, field)(value)
    assert field.adapt_convert is not None
    try:
        return field.adapt_convert.adapt(value)
    except Exception as exc:
        raise _bad_value(meta, field, value, exc) from exc


def explain_encode_error(meta: ModelMeta, row: Any, exc: Exception) -> Exception:
    """A clear error for a row `encode` failed on, naming the field at fault."""
    if isinstance(exc, UnsavedRelatedRowError):
        return exc
    if not isinstance(row, tuple) or len(row) != len(meta.fields):
        return ValueNotStorableError(
            f"expected a {meta.name} row with {len(meta.fields)} fields, got {row!r}."
        )
    for field, value in zip(meta.fields, row):
        try:
            encode_value(meta, field, value)
        except Exception as field_exc:
            return field_exc
    return ValueNotStorableError(f"cannot store {meta.name} row: {exc}")


def explain_decode_error(meta: ModelMeta, values: Any, exc: Exception) -> Exception:
    """A clear error for stored values `decode` failed on."""
    if len(values) != len(meta.fields):
        return column_count_error(meta, len(values))
    return ValueNotStorableError(
        f"cannot read a {meta.name} row from stored values: {exc}. Is the field "
        "type the one the data was written with?"
    )


def column_count_error(meta: ModelMeta, column_count: int) -> ColumnCountMismatchError:
    """The error for a query row of `column_count` columns read as a `meta` row."""
    return ColumnCountMismatchError(
        f"the query returned {column_count} columns but {meta.name} has "
        f"{len(meta.fields)} fields ({', '.join(meta.field_names)}). Select "
        "exactly those columns, in that order."
    )


def _bad_value(
    meta: ModelMeta, field: FieldInfo, value: Any, exc: Exception
) -> ValueNotStorableError:
    return ValueNotStorableError(
        f"{meta.name}.{field.name} = {value!r} cannot be stored as "
        f"{getattr(field.python_type, '__qualname__', field.python_type)}: {exc}"
    )


_PRIMITIVES = frozenset({type(None), int, float, str, bytes})


def encode_params(
    params: Sequence[Any] | Mapping[str, Any],
) -> list[Any] | dict[str, Any]:
    """Query parameters as primitives, converted as a field of their type would be.

    A datetime parameter then compares correctly with stored datetimes, in-process
    and through the server alike; a row stands for its id. Values of other types
    are left for SQLite to refuse.
    """
    if isinstance(params, Mapping):
        return {name: _encode_param(value) for name, value in params.items()}
    return [_encode_param(value) for value in params]


def _encode_param(value: Any) -> Any:
    if value.__class__ in _PRIMITIVES:
        return value
    pair = find_adapt_convert(value.__class__)
    if pair is not None:
        return pair.adapt(value)
    if is_model(value.__class__) or isinstance(value, LazyRow):
        return value.id
    return value
