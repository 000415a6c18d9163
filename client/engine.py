"""`RemoteEngine`: the `Engine` methods, run by a server process.

Model metadata and value conversion run here, in the client, with the same code
as the in-process `Engine`; the server receives table specs and primitive rows.
Every public method goes through `_call`, which registers models with the server
on first use (and again if the server restarted).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TypeVar

from micro_namedtuple_sqlite_persister import core, wire
from micro_namedtuple_sqlite_persister.convert import (
    encode_params,
    explain_encode_error,
)
from micro_namedtuple_sqlite_persister.errors import (
    PersisterError,
    RowNotFoundError,
    TransactionError,
    UnknownModelError,
)
from micro_namedtuple_sqlite_persister.keys import CurveKeys
from micro_namedtuple_sqlite_persister.lazy import LazyRow
from micro_namedtuple_sqlite_persister.model import ModelMeta, get_meta
from micro_namedtuple_sqlite_persister.persister import decode_checked, encode_fields
from micro_namedtuple_sqlite_persister.tree import (
    build_deep,
    flatten_tree,
    rebuild_saved,
    related_models,
)

from .cursor import RemoteCursor
from .transport import Transport

M = TypeVar("M")
READ_ONLY_SQL = ("select", "with", "pragma", "explain", "values")
WRITE_REFUSED_BY_READER = "attempt to write a readonly database"


class RemoteEngine:
    """A client of the server with the methods of `Engine`.

    Safe to share between threads (each thread gets its own socket) and to pass
    to worker processes (fork or spawn: each process connects on first use).
    With `curve`, a pickled engine carries the key file paths, never the keys:
    the receiving process reads the files again.
    """

    def __init__(
        self,
        address: str = wire.DEFAULT_ADDRESS,
        timeout: float = 10.0,
        curve: CurveKeys | None = None,
    ) -> None:
        if not address.startswith(("tcp://", "ipc://")):
            raise ValueError(
                f"server address {address!r} must look like tcp://HOST:PORT or "
                "ipc://PATH (as given to the server's --bind)."
            )
        self.address = address
        self.timeout = timeout
        self.curve = curve
        socket_keys = None if curve is None else curve.load()
        self._transport = Transport(address, timeout, socket_keys)
        # Spec keys the server knows, and the metas whose keys those are (a
        # cheap check on every call).
        self._registered: set[str] = set()
        self._registered_metas: set[ModelMeta] = set()
        self._local = threading.local()

    def __reduce__(self) -> tuple[Any, ...]:
        return (RemoteEngine, (self.address, self.timeout, self.curve))

    # -- tables and writes ---------------------------------------------------------

    def ensure_table_created(self, model: type) -> None:
        """Create `model`'s table on the server, or check it matches (as Engine)."""
        meta = get_meta(model)
        meta.require_table()
        self._call("ensure_table", [meta.spec.key], meta)

    def save(self, row: M, deep: bool = False) -> M:
        """Insert or update `row` (and, with deep, its related rows), as Engine."""
        meta = get_meta(type(row))
        meta.require_table()
        if deep:
            return self._save_trees([row], is_deep=True)[0]  # type: ignore[no-any-return]
        try:
            values = list(meta.encode(row))
        except Exception as exc:
            raise explain_encode_error(meta, row, exc) from exc
        row_id = row[0]  # type: ignore[index]
        try:
            saved_id = self._call("save", [meta.spec.key, row_id, values], meta)
        except OverflowError as exc:
            raise core.not_storable_error(meta.spec, values, exc) from exc
        if row_id is None:
            return tuple.__new__(type(row), (saved_id, *row[1:]))  # type: ignore[index, type-var]
        return row

    def save_many(self, rows: Sequence[M], deep: bool = False) -> list[M]:
        """Save every row in one request and one transaction: all or none."""
        return self._save_trees(rows, is_deep=deep)

    def _save_trees(self, rows: Sequence[Any], *, is_deep: bool) -> list[Any]:
        nodes: list[core.Node] = []
        sources: list[Any] = []
        trees = []
        for row in rows:
            tree_nodes, tree_rows = flatten_tree(row) if is_deep else _one_node(row)
            offset = len(nodes)
            for key, row_id, values, refs in tree_nodes:
                shifted = [(value_index, node + offset) for value_index, node in refs]
                nodes.append((key, row_id, values, shifted))
            sources += tree_rows
            trees.append(tree_nodes)
        metas = _unique_metas(sources)
        try:
            ids = self._call("save_nodes", [nodes], *metas)
        except OverflowError as exc:
            raise _overflow_error(nodes, metas, exc) from exc
        saved, start = [], 0
        for tree_nodes in trees:
            # Rebuild from the tree's own nodes: their references are not shifted.
            end = start + len(tree_nodes)
            saved.append(rebuild_saved(tree_nodes, sources[start:end], ids[start:end]))
            start = end
        return saved

    def delete(self, model_or_row: Any, id: int | None = None) -> None:
        """Delete by `delete(Model, id)` or `delete(row)`; RowNotFoundError if none."""
        model, row_id = (
            (type(model_or_row), model_or_row[0]) if id is None else (model_or_row, id)
        )
        meta = get_meta(model)
        meta.require_table()
        if row_id is None:
            raise RowNotFoundError(
                f"cannot delete a {meta.name} with id=None: it was never saved."
            )
        self._call("delete", [meta.spec.key, row_id], meta)

    # -- reads ---------------------------------------------------------------------

    def find(self, model: type[M], id: int, deep: bool = False) -> M:
        """The row with this id (RowNotFoundError if none); related rows as Engine."""
        meta = get_meta(model)
        meta.require_table()
        if id is None:
            raise RowNotFoundError(
                f"find({meta.name}, None): a row that was never saved has no id."
            )
        is_deep = bool(deep and meta.related)
        result = self._call("find", [meta.spec.key, id, is_deep], meta)
        if is_deep:
            return self.build_deep(meta, result[:1], result[1])[0]  # type: ignore[no-any-return]
        return decode_checked(meta, result[0], self._lazy)  # type: ignore[no-any-return]

    def find_by(self, model: type[M], **fields: Any) -> M | None:
        """The first row whose fields equal the values given, or None."""
        meta = get_meta(model)
        meta.require_table()
        values = encode_fields(meta, fields)
        row = self._call("find_by", [meta.spec.key, values], meta)
        return None if row is None else decode_checked(meta, row, self._lazy)  # type: ignore[no-any-return]

    def query(
        self,
        model: type[M],
        sql: str,
        params: Sequence[Any] | Mapping[str, Any] = (),
        deep: bool = False,
    ) -> RemoteCursor:
        """Run `sql` on the server; the cursor gives `model` rows, page by page.

        SELECT, WITH, PRAGMA, EXPLAIN and VALUES run on a reader beside the writer;
        any other statement, or one of those that turns out to write (WITH ...
        INSERT, PRAGMA name = value), runs on the writer and commits like a save.
        """
        meta = get_meta(model)
        is_deep = bool(deep and meta.related)
        wire_params = encode_params(params)
        if _is_read_only(sql):
            try:
                page = self._call(
                    "query", [meta.spec.key, sql, wire_params, is_deep, None], meta
                )
            except sqlite3.OperationalError as exc:
                # The reader's connection is read-only: it refused before writing.
                if str(exc) != WRITE_REFUSED_BY_READER:
                    raise
                page = [None, self._call("execute", [sql, wire_params]), None]
        else:
            page = [None, self._call("execute", [sql, wire_params]), None]
        return RemoteCursor(self, meta, page, is_deep)

    # -- transactions and lifecycle ------------------------------------------------

    def commit(self) -> None:
        """A barrier: every acknowledged write is already committed on the server."""
        self._call("commit", [])

    def ping(self) -> dict[str, Any]:
        """The server's protocol version and pid; ServerTimeoutError if it is down."""
        return self._call("ping", [])  # type: ignore[no-any-return]

    @contextlib.contextmanager
    def transaction(self, lease_timeout_s: float | None = None) -> Iterator[None]:
        """Requests inside commit together at the end, or roll back on an exception.

        The server holds other clients' writes until this block ends. If this
        client sends nothing for the server's lease timeout, the server rolls the
        transaction back and the next call raises TransactionError.
        """
        if getattr(self._local, "lease", None) is not None:
            raise TransactionError("transaction() cannot be nested inside another.")
        options = (
            {} if lease_timeout_s is None else {"lease_timeout_s": lease_timeout_s}
        )
        self._local.lease = self._transport.request("begin", [], options)
        try:
            yield
        except BaseException:
            with contextlib.suppress(PersisterError):
                self._call("rollback_lease", [])
            raise
        else:
            self._call("commit_lease", [])
        finally:
            self._local.lease = None

    def close(self) -> None:
        """Close this process's sockets; the engine reconnects if used again."""
        self._transport.close()

    def __enter__(self) -> RemoteEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- helpers -------------------------------------------------------------------

    def fetch_page(self, cursor_id: str, rows: int | None) -> list[Any]:
        """The next page of an open server-side cursor (used by RemoteCursor)."""
        return self._call("fetch", [cursor_id, rows])  # type: ignore[no-any-return]

    def close_cursor(self, cursor_id: str) -> None:
        self._call("close_cursor", [cursor_id])

    def build_deep(
        self, meta: ModelMeta, rows: list[Any], related: dict[str, list[Any]]
    ) -> list[Any]:
        loaded = {key: {row[0]: row for row in found} for key, found in related.items()}
        return build_deep(meta, rows, loaded, decode_checked, self._lazy)

    def _lazy(self, model: type, id: int) -> LazyRow:
        return LazyRow(self, model, id)

    def _call(self, op: str, args: list[Any], *metas: ModelMeta) -> Any:
        """Send one request (registering its models first); the one call helper."""
        lease = getattr(self._local, "lease", None)
        options = {} if lease is None else {"lease": lease}
        self._register(metas)
        try:
            return self._transport.request(op, args, options)
        except UnknownModelError:
            # The server restarted and forgot our models: teach it again, once.
            self._registered.clear()
            self._registered_metas.clear()
            self._register(metas)
            return self._transport.request(op, args, options)

    def _register(self, metas: Sequence[ModelMeta]) -> None:
        if self._registered_metas.issuperset(metas):
            return
        missing = [meta for meta in metas if meta.spec.key not in self._registered]
        if missing:
            specs = {
                m.spec.key: m.spec
                for meta in missing
                for m in related_models(meta.model)
            }
            self._transport.request(
                "register", [[spec.to_wire() for spec in specs.values()]]
            )
            self._registered.update(specs)
        self._registered_metas.update(metas)


def connect(
    address: str = wire.DEFAULT_ADDRESS,
    *,
    timeout: float = 10.0,
    curve: CurveKeys | None = None,
) -> RemoteEngine:
    """A client for the server at `address`; it connects lazily, on first use.

    Every call raises ServerTimeoutError (a TimeoutError) if the server does not
    answer within `timeout` seconds. For a server with CURVE on, pass
    `curve=CurveKeys(client_secret_file, server_public_file)`; the files are read
    here (KeyFileError if one is missing or malformed). A server that does not
    admit the key never answers, so calls end in ServerTimeoutError.
    """
    return RemoteEngine(address, timeout, curve)


def _one_node(row: Any) -> tuple[list[core.Node], list[Any]]:
    meta = get_meta(type(row))
    meta.require_table()
    try:
        values = list(meta.encode(row))
    except Exception as exc:
        raise explain_encode_error(meta, row, exc) from exc
    return [(meta.spec.key, row[0], values, [])], [row]


def _unique_metas(rows: list[Any]) -> list[ModelMeta]:
    return list({type(row): get_meta(type(row)) for row in rows}.values())


def _overflow_error(
    nodes: list[core.Node], metas: list[ModelMeta], exc: OverflowError
) -> Exception:
    specs = {meta.spec.key: meta.spec for meta in metas}
    for key, _, values, _ in nodes:
        if not all(map(core.fits_sqlite, values)):
            return core.not_storable_error(specs[key], values, exc)
    return core.not_storable_error(metas[0].spec, [], exc)


def _is_read_only(sql: str) -> bool:
    """True when `sql` starts with a keyword that only reads."""
    words = sql.split(None, 1)
    return bool(words) and words[0].lower() in READ_ONLY_SQL
