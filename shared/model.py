"""Model metadata: what each field of a NamedTuple model is and how it is stored.

`get_meta(Model)` computes a `ModelMeta` once per class and caches it in `_meta`.
The table name is the class name up to its first `_`, so `Team_NameOnly` reads the
`Team` table. Any process that imports the model computes the same metadata, so a
client and the in-process `Engine` agree without the server knowing the model.
"""

from __future__ import annotations

import enum
import types
import typing
from dataclasses import dataclass
from typing import Any

from . import adaptconvert
from .adaptconvert import AdaptConvert
from .errors import (
    InvalidModelError,
    InvalidTableModelError,
    UnregisteredFieldTypeError,
)
from .spec import TableSpec, fingerprint, quote


class FieldKind(enum.Enum):
    PLAIN = "plain"  # int, float, str, bytes: stored as they are
    CONVERTED = "converted"  # through a registered adapt/convert pair
    RELATED = "related"  # another model: stored as its id
    ANY = "any"  # stored and returned untouched


_PLAIN_SQL_TYPES: dict[type, str] = {
    int: "INTEGER",
    float: "REAL",
    str: "TEXT",
    bytes: "BLOB",
}


@dataclass(frozen=True)
class FieldInfo:
    """One field of a model, classified."""

    name: str
    kind: FieldKind
    python_type: Any
    is_nullable: bool
    declaration: str
    adapt_convert: AdaptConvert | None = None
    related: type | None = None


class ModelMeta:
    """Everything the library knows about one model class. Built by `get_meta`."""

    def __init__(self, model: type, fields: tuple[FieldInfo, ...]) -> None:
        from .convert import compile_codecs  # here: convert imports this module

        self.model = model
        self.name = model.__name__
        self.fields = fields
        self.field_names = tuple(field.name for field in fields)
        self._by_name = {field.name: field for field in fields}
        self.table = table_name(model)
        self.related = tuple(
            (index, field.related)
            for index, field in enumerate(fields)
            if field.related is not None
        )
        self.table_error = _table_model_problem(self.name, fields)
        self.spec = TableSpec(
            self.name,
            self.table,
            self.field_names,
            tuple(field.declaration for field in fields),
            tuple((index, _spec_key(target)) for index, target in self.related),
        )
        (
            self.encode,
            self.encode_deep,
            self.decode,
            self.decode_loaded,
            self.save_tree,
            self.save_row,
        ) = compile_codecs(self)

    def require_table(self) -> None:
        """Raise InvalidTableModelError unless this model can be used as a table."""
        if self.table_error is not None:
            raise InvalidTableModelError(self.table_error)

    def field(self, name: str) -> FieldInfo | None:
        """The field called `name`, or None."""
        return self._by_name.get(name)

    def __repr__(self) -> str:
        columns = ", ".join(
            f"{field.name} {field.declaration}".strip() for field in self.fields
        )
        return f"ModelMeta({self.name} -> table {self.table!r}: {columns})"


# Model class -> its metadata. Global because adapters are global: one model has one
# meaning in a process, whichever engine uses it.
_meta: dict[type, ModelMeta] = {}


def _forget_models_using(python_type: type) -> None:
    """Drop cached metadata whose conversion a new registration for `python_type`
    changes; it is rebuilt on next use."""
    for model, meta in list(_meta.items()):
        if any(
            isinstance(field.python_type, type)
            and issubclass(field.python_type, python_type)
            for field in meta.fields
        ):
            del _meta[model]


adaptconvert.on_registration_change(_forget_models_using)


def get_meta(model: type) -> ModelMeta:
    """The metadata of `model`, computed on first use.

    Raises InvalidModelError if `model` is not a NamedTuple class, and
    UnregisteredFieldTypeError for a field type with no adapter.
    """
    meta = _meta.get(model)
    if meta is None:
        meta = ModelMeta(model, _classify_fields(model))
        _meta[model] = meta
    return meta


def table_name(model: type) -> str:
    """The table a model reads and writes: its class name up to the first `_`."""
    return model.__name__.split("_", 1)[0] or model.__name__


def is_model(value: Any) -> bool:
    """True for a NamedTuple class."""
    return (
        isinstance(value, type)
        and issubclass(value, tuple)
        and hasattr(value, "_fields")
    )


def _classify_fields(model: type) -> tuple[FieldInfo, ...]:
    if not is_model(model):
        raise InvalidModelError(
            f"{model!r} is not a model; models are classes deriving from "
            "typing.NamedTuple."
        )
    hints = _type_hints(model)
    return tuple(_classify(model, name, hints[name]) for name in model._fields)  # type: ignore[attr-defined]


def _type_hints(model: type) -> dict[str, Any]:
    known = {meta.name: meta.model for meta in _meta.values()}
    known[model.__name__] = model
    try:
        return typing.get_type_hints(model, localns=known)
    except NameError as exc:
        raise InvalidModelError(
            f"cannot resolve the annotations of model {model.__name__}: {exc}. "
            "Define the models it names at module level, or use them once "
            "(e.g. ensure_table_created) before this one."
        ) from exc


def _classify(model: type, name: str, hint: Any) -> FieldInfo:
    python_type, is_nullable = _strip_optional(model, name, hint)
    null = "" if is_nullable else " NOT NULL"
    if python_type is Any:
        return FieldInfo(name, FieldKind.ANY, Any, True, "")
    if name == "id" and python_type is int:
        return FieldInfo(name, FieldKind.PLAIN, int, is_nullable, "INTEGER PRIMARY KEY")
    base_type = typing.get_origin(python_type) or python_type
    if not isinstance(base_type, type):
        raise _unregistered(model, name, hint)
    # Looked up before is_model: a NamedTuple type with a registered pair is a
    # value stored through it, not a related table.
    pair = adaptconvert.find_adapt_convert(base_type)
    if pair is not None:
        declaration = pair.sql_type + null
        return FieldInfo(
            name, FieldKind.CONVERTED, base_type, is_nullable, declaration, pair
        )
    if is_model(base_type):
        target = quote(table_name(base_type))
        declaration = f'INTEGER{null} REFERENCES {target}("id")'
        return FieldInfo(
            name,
            FieldKind.RELATED,
            base_type,
            is_nullable,
            declaration,
            related=base_type,
        )
    for plain, sql_type in _PLAIN_SQL_TYPES.items():
        if issubclass(base_type, plain):
            return FieldInfo(name, FieldKind.PLAIN, plain, is_nullable, sql_type + null)
    raise _unregistered(model, name, hint)


def _strip_optional(model: type, name: str, hint: Any) -> tuple[Any, bool]:
    """(X, True) for `X | None` or Optional[X]; (hint, False) otherwise."""
    if typing.get_origin(hint) not in (typing.Union, types.UnionType):
        return hint, False
    members = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    if len(members) != 1:
        raise InvalidModelError(
            f"{model.__name__}.{name}: {hint} is a union of several types; a field "
            "holds one type, optionally `| None`. Use Any, or one type with an adapter."
        )
    return members[0], True


def _unregistered(model: type, name: str, hint: Any) -> UnregisteredFieldTypeError:
    shown = getattr(hint, "__qualname__", repr(hint))
    return UnregisteredFieldTypeError(
        f"{model.__name__}.{name} has type {shown}, which has no adapter and "
        "converter. Register them with register_adapt_convert("
        f"{shown}, adapt, convert), or register_pickleable_adapt_convert({shown})."
    )


def _table_model_problem(name: str, fields: tuple[FieldInfo, ...]) -> str | None:
    first = fields[0] if fields else None
    if (
        first is None
        or first.name != "id"
        or first.python_type is not int
        or not first.is_nullable
    ):
        return (
            f"{name} cannot be used as a table: its first field must be "
            "`id: int | None`. Add that field first, or use the model only as a "
            "query result with engine.query."
        )
    for field in fields:
        if field.kind is FieldKind.ANY:
            return (
                f"{name}.{field.name} is typed Any, which a table model cannot "
                "store. Give it a concrete type, or use the model only for queries."
            )
    return None


def _spec_key(target: type) -> str:
    """The spec key of `target` without building its references (so cycles end)."""
    if target in _meta:
        return _meta[target].spec.key
    fields = _classify_fields(target)
    names = tuple(field.name for field in fields)
    declarations = tuple(field.declaration for field in fields)
    return fingerprint(target.__name__, table_name(target), names, declarations)
