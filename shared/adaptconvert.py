"""Registered adapt/convert pairs: how a Python type becomes a SQLite value and back.

Conversion is chosen by a model's field type, never by `sqlite3`'s global adapter
registry, so the same registrations work in-process and in a client of the server.
The standard types (bool, date, datetime, dict, list) are registered on import.
"""

from __future__ import annotations

import datetime as dt
import json
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import PersisterError


class AdaptConvertTypeAlreadyRegistered(PersisterError):
    """`register_adapt_convert` was called twice for one type without `overwrite`."""


@dataclass(frozen=True)
class AdaptConvert:
    """How one type is stored: `adapt` on the way in, `convert` on the way out."""

    python_type: type
    adapt: Callable[[Any], Any]
    convert: Callable[[Any], Any]
    sql_type: str


_registry: dict[type, AdaptConvert] = {}
_listeners: list[Callable[[type], None]] = []


def register_adapt_convert(
    python_type: type,
    adapt: Callable[[Any], Any],
    convert: Callable[[Any], Any],
    overwrite: bool = False,
    *,
    sql_type: str = "BLOB",
) -> None:
    """Store fields of `python_type` as `adapt(value)`; read them back with `convert`.

    `adapt` must return None, int, float, str or bytes. `sql_type` is the declared
    column type; the default BLOB keeps values exactly as adapted.
    Raises AdaptConvertTypeAlreadyRegistered when the type has a pair already and
    `overwrite` is False. Call it before models using the type are first used.
    """
    if python_type in _registry and not overwrite:
        raise AdaptConvertTypeAlreadyRegistered(
            f"{python_type.__qualname__} already has an adapter and converter; "
            "pass overwrite=True to replace them."
        )
    _registry[python_type] = AdaptConvert(python_type, adapt, convert, sql_type)
    for listener in _listeners:
        listener(python_type)


def register_pickleable_adapt_convert(
    python_type: type, overwrite: bool = True
) -> None:
    """Store fields of `python_type` as pickles (pandas DataFrames, numpy arrays...).

    Values are unpickled only in the process that reads them, never on a server.
    Only read databases you trust: unpickling runs code the pickle names.
    """
    register_adapt_convert(
        python_type,
        _pickle_dumps,
        pickle.loads,
        overwrite=overwrite,
        sql_type="BLOB",
    )


def register_standard_adaptconverters() -> None:
    """(Re-)register bool, date, datetime, dict and list. Safe to call many times."""
    register_adapt_convert(bool, int, bool, overwrite=True, sql_type="INTEGER")
    register_adapt_convert(
        dt.date, dt.date.isoformat, dt.date.fromisoformat, True, sql_type="TEXT"
    )
    register_adapt_convert(
        dt.datetime,
        dt.datetime.isoformat,
        dt.datetime.fromisoformat,
        True,
        sql_type="TEXT",
    )
    register_adapt_convert(dict, _json_dumps, json.loads, True, sql_type="TEXT")
    register_adapt_convert(list, _json_dumps, json.loads, True, sql_type="TEXT")


def find_adapt_convert(python_type: type) -> AdaptConvert | None:
    """The pair registered for `python_type` or its nearest registered base class."""
    for base in python_type.__mro__:
        found = _registry.get(base)
        if found is not None:
            return found
    return None


def on_registration_change(listener: Callable[[type], None]) -> None:
    """Call `listener(python_type)` after each registration (the model cache does)."""
    _listeners.append(listener)


def _pickle_dumps(value: Any) -> bytes:
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def _json_dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


register_standard_adaptconverters()
