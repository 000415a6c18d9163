"""Typed NamedTuple rows in SQLite, in-process (`Engine`) or through a server.

    from micro_namedtuple_sqlite_persister import Engine, select
    engine = Engine("app.db")

The client of the server lives in `micro_namedtuple_sqlite_persister.client`, the
server in `micro_namedtuple_sqlite_persister.server`.
"""

import logging

from .adaptconvert import (
    AdaptConvertTypeAlreadyRegistered,
    register_adapt_convert,
    register_pickleable_adapt_convert,
    register_standard_adaptconverters,
)
from .errors import (
    AccessDeniedError,
    ColumnCountMismatchError,
    InvalidFieldError,
    InvalidModelError,
    InvalidQueryError,
    InvalidTableModelError,
    KeyFileError,
    PersisterError,
    ProtocolError,
    RemoteError,
    RowNotFoundError,
    SchemaMismatchError,
    ServerTimeoutError,
    TransactionError,
    UnregisteredFieldTypeError,
    UnsavedRelatedRowError,
    ValueNotStorableError,
)
from .lazy import LazyRow
from .persister import Engine
from .query import select

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "AccessDeniedError",
    "AdaptConvertTypeAlreadyRegistered",
    "ColumnCountMismatchError",
    "Engine",
    "InvalidFieldError",
    "InvalidModelError",
    "InvalidQueryError",
    "InvalidTableModelError",
    "KeyFileError",
    "LazyRow",
    "PersisterError",
    "ProtocolError",
    "RemoteError",
    "RowNotFoundError",
    "SchemaMismatchError",
    "ServerTimeoutError",
    "TransactionError",
    "UnregisteredFieldTypeError",
    "UnsavedRelatedRowError",
    "ValueNotStorableError",
    "register_adapt_convert",
    "register_pickleable_adapt_convert",
    "register_standard_adaptconverters",
    "select",
]
