"""Every error the library raises, in-process or through the server.

All share one base class, `PersisterError`. The client re-raises a server-side error
as the same class with the same message, looking the class up by name in `BY_NAME`.
"""

from __future__ import annotations

import sqlite3


class PersisterError(Exception):
    """Base class of every error raised by this library."""


class InvalidModelError(PersisterError, TypeError):
    """A class used as a model is not a usable NamedTuple model."""


class UnregisteredFieldTypeError(InvalidModelError):
    """A model field has a type with no registered adapter and converter."""


class InvalidTableModelError(InvalidModelError):
    """A model used as a table lacks `id: int | None` first, or has an `Any` field."""


class SchemaMismatchError(PersisterError):
    """The existing table does not have the columns the model describes."""


class RowNotFoundError(PersisterError, LookupError):
    """No row has the id that was asked for."""


class UnsavedRelatedRowError(PersisterError, ValueError):
    """A row refers to a related row that has no id yet."""


class InvalidFieldError(PersisterError, ValueError):
    """A field name given as an argument is not a field of the model."""


class ValueNotStorableError(PersisterError, ValueError):
    """A value cannot be converted to something SQLite can store."""


class ColumnCountMismatchError(PersisterError):
    """A query returned a row whose column count differs from the model's."""


class InvalidQueryError(PersisterError):
    """`select` could not build SQL from the decorated function."""


class TransactionError(PersisterError):
    """A transaction was misused, rolled back, or its write lease expired."""


class ProtocolError(PersisterError):
    """A message on the wire was malformed or of an unsupported version."""


class ServerTimeoutError(PersisterError, TimeoutError):
    """The server did not answer within the client's timeout."""


class AccessDeniedError(PersisterError, PermissionError):
    """The server refused the request for this client's role."""


class KeyFileError(PersisterError, ValueError):
    """A CURVE key file or key directory is missing, unreadable or malformed."""


class RemoteError(PersisterError):
    """The server raised an error of a type this client does not know."""


def _all_error_classes() -> dict[str, type[BaseException]]:
    ours = {
        cls.__name__: cls
        for cls in list(globals().values())
        if isinstance(cls, type) and issubclass(cls, PersisterError)
    }
    sqlite_errors = {
        cls.__name__: cls
        for cls in vars(sqlite3).values()
        if isinstance(cls, type) and issubclass(cls, sqlite3.Error)
    }
    return {**sqlite_errors, **ours}


BY_NAME = _all_error_classes()


class UnknownModelError(ProtocolError):
    """The server does not know a model fingerprint (e.g. it restarted).

    The client handles this itself by registering the model again.
    """


BY_NAME["UnknownModelError"] = UnknownModelError
# sqlite3 raises OverflowError when it binds an int beyond 64 bits (a find or a
# query parameter); through the server the client re-raises it unchanged too.
BY_NAME["OverflowError"] = OverflowError
