"""Trees of related rows: flattened for a deep save, rebuilt after a deep load.

Both walks use an explicit stack, so a chain thousands of rows deep never reaches
Python's recursion limit, and a row shared by several parents is handled once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .convert import (
    SAVED_ALREADY,
    RowSaveFailed,
    TreeTooDeep,
    explain_encode_error,
)
from .core import Loaded, Node, Row, missing_table_error, not_storable_error
from .errors import PersisterError
from .model import ModelMeta, _meta, get_meta, is_model


def walk_children_first(root: Any) -> list[Any]:
    """Each row of `root`'s tree that a deep save writes, children before parents.

    A row object reachable along several paths comes once. Related rows that are
    LazyRows or plain ids are not visited: they are saved already. Every row's
    model is a valid table model, with its metadata in `_meta`.
    Raises InvalidTableModelError for a row whose model cannot be a table.
    """
    # Fast path: a parent precedes its children in pre-order, so the reversed
    # pre-order of a tree is children-first. It breaks only when a row object is
    # shared by two parents; then the post-order walk handles it. Rows only, no
    # (meta, row) pairs: fewer objects for the garbage collector to track.
    metas: dict[type, ModelMeta] = {}
    seen: set[int] = set()
    order = []
    stack = [root]
    while stack:
        row = stack.pop()
        if id(row) in seen:
            return list(_walk_post_order(root, metas))
        seen.add(id(row))
        meta = metas.get(row.__class__) or _table_meta(row, metas)
        order.append(row)
        for index, _ in meta.related:
            child = row[index]
            if child.__class__ not in SAVED_ALREADY:
                stack.append(child)
    order.reverse()
    return order


# How deep a deep save recurses before it finishes with the iterative walk: far
# below Python's recursion limit (1,000), whatever the caller's own stack uses.
RECURSION_DEPTH = 64


def save_tree(root: Any, saved: dict[int, Any], cursor: sqlite3.Cursor) -> Any:
    """In-process deep save of `root`'s tree, children first; the saved root.

    `saved` maps id(row object) -> the row as saved. Each model's generated
    `save_tree` recurses into the related rows, at most RECURSION_DEPTH deep, as
    most trees are: walking and saving in one pass is what keeps a deep save
    near hand-written speed. A deeper tree is finished in `walk_children_first`
    order, skipping the rows saved already. The caller holds a savepoint, so an
    error part way leaves nothing behind.
    """
    meta = _table_meta(root, {})
    try:
        try:
            return meta.save_tree(root, saved, cursor, RECURSION_DEPTH)
        except TreeTooDeep:
            for row in walk_children_first(root):
                if id(row) not in saved:
                    # Children come first: no related row is left to recurse into.
                    _meta[row.__class__].save_tree(row, saved, cursor, 0)
            return saved[id(root)]
    except RowSaveFailed as failed:
        error = explain_save_error(failed.meta, failed.row, failed.error)
        raise error from failed.error


def _walk_post_order(root: Any, metas: dict[type, ModelMeta]) -> Iterator[Any]:
    """The general children-first walk: each row once, even when shared."""
    done: set[int] = set()
    expanded: set[int] = set()
    stack = [root]
    while stack:
        row = stack[-1]
        key = id(row)
        if key in expanded:
            stack.pop()
            if key not in done:
                done.add(key)
                yield row
            continue
        expanded.add(key)
        meta = _table_meta(row, metas)
        for index, _ in meta.related:
            child = row[index]
            if child.__class__ not in SAVED_ALREADY and id(child) not in expanded:
                stack.append(child)


def _table_meta(row: Any, metas: dict[type, ModelMeta]) -> ModelMeta:
    meta = metas.get(row.__class__)
    if meta is None:
        meta = metas[row.__class__] = get_meta(row.__class__)
        meta.require_table()
    return meta


def encode_deep_checked(meta: ModelMeta, row: Any) -> list[Any]:
    """`meta.encode_deep(row)` as a list, with a clear error naming a bad field."""
    try:
        return list(meta.encode_deep(row))
    except Exception as exc:
        raise explain_encode_error(meta, row, exc) from exc


def explain_save_error(meta: ModelMeta, row: Any, exc: Exception) -> Exception:
    """A clear error for a row `meta.save_row` or `meta.save_tree` failed on."""
    if isinstance(exc, PersisterError):  # raised with its explanation already
        return exc
    try:
        values = meta.encode_deep(row)
    except Exception as encode_exc:
        return explain_encode_error(meta, row, encode_exc)
    if isinstance(exc, (OverflowError, sqlite3.ProgrammingError)):
        return not_storable_error(meta.spec, values, exc)
    if isinstance(exc, sqlite3.OperationalError):
        return missing_table_error(meta.spec, exc) or exc
    return exc


def flatten_tree(root: Any) -> tuple[list[Node], list[Any]]:
    """The rows of `root`'s tree as deep-save nodes, children before parents.

    Returns (nodes, rows): rows[i] is the model instance nodes[i] came from.
    """
    nodes: list[Node] = []
    rows: list[Any] = []
    index_of: dict[int, int] = {}
    for row in walk_children_first(root):
        meta = _meta[row.__class__]
        values = encode_deep_checked(meta, row)
        refs = []
        for index, _ in meta.related:
            child = row[index]
            if child is None:
                continue
            if _is_unsaved(child):
                refs.append((index - 1, index_of[id(child)]))
            else:
                values[index - 1] = child if type(child) is int else child.id
        index_of[id(row)] = len(nodes)
        nodes.append((meta.spec.key, row[0], values, refs))
        rows.append(row)
    return nodes, rows


def _is_unsaved(value: Any) -> bool:
    """True for a model instance a deep save must visit (not None, id or LazyRow)."""
    return value.__class__ not in SAVED_ALREADY


def rebuild_saved(nodes: list[Node], rows: list[Any], ids: list[int]) -> Any:
    """The root of the saved tree: every row with its id, children rebuilt too."""
    built: list[Any] = []
    for (_, _, _, refs), row, row_id in zip(nodes, rows, ids):
        fields = list(row)
        fields[0] = row_id
        for value_index, child_index in refs:
            fields[value_index + 1] = built[child_index]
        built.append(tuple.__new__(type(row), fields))
    return built[-1]


def build_deep(
    meta: ModelMeta,
    rows: Iterable[Row],
    loaded: Loaded,
    decode_row: Callable[[ModelMeta, Row, Callable[[type, int], Any]], Any],
    lazy: Callable[[type, int], Any],
) -> list[Any]:
    """Model instances for `rows` with every related row taken from `loaded`.

    `decode_row(meta, values, ref)` turns stored values into an instance. A related
    row missing from `loaded`, or closing a cycle, is left as `lazy(model, id)`.
    """
    fast = _build_in_reverse_load_order(meta, rows, loaded, lazy)
    if fast is not None:
        return fast
    built: dict[tuple[type, int], Any] = {}
    plans: dict[type, _Plan] = {}

    def plan_of(model: type) -> _Plan:
        plan = plans.get(model)
        if plan is None:
            target = get_meta(model)
            plan = plans[model] = (target, loaded.get(target.spec.key, {}))
        return plan

    def ref(model: type, row_id: int) -> Any:
        row = built.get((model, row_id))
        return lazy(model, row_id) if row is None else row

    results = []
    for values in rows:
        roots = [(t, values[i]) for i, t in meta.related if values[i] is not None]
        _build_reachable(roots, built, plans, plan_of, decode_row, ref)
        results.append(decode_row(meta, values, ref))
    return results


def _build_in_reverse_load_order(
    meta: ModelMeta,
    rows: Iterable[Row],
    loaded: Loaded,
    lazy: Callable[[type, int], Any],
) -> list[Any] | None:
    """The common case of `build_deep` in one pass, or None to use the general walk.

    Related rows are loaded level by level, so building each table's rows in
    reverse load order builds children before parents. When a row refers to a
    loaded row not built yet (a cycle, a row shared across levels) or a row fails
    to decode, return None: the general walk then handles it, with its errors.
    """
    metas = related_models(meta.model)
    built_by_model: dict[type, dict[int, Any]] = {}
    built_by_key: dict[str, dict[int, Any]] = {}
    for target in metas:
        built_by_model[target.model] = built_by_key.setdefault(target.spec.key, {})
    is_missed = False

    def ref(model: type, row_id: int) -> Any:
        nonlocal is_missed
        row = built_by_model[model].get(row_id)
        if row is None:
            loaded_rows = loaded.get(get_meta(model).spec.key)
            is_missed = is_missed or (loaded_rows is not None and row_id in loaded_rows)
            return lazy(model, row_id)
        return row

    def built_for(target: ModelMeta) -> tuple[dict[int, Any], ...]:
        return tuple(built_by_model[model] for _, model in target.related)

    decoders = {
        target.spec.key: (target.decode_loaded, built_for(target)) for target in metas
    }
    try:
        for key in reversed(list(loaded)):
            (decode, built), into = decoders[key], built_by_key[key]
            for row_id, values in reversed(loaded[key].items()):
                into[row_id] = decode(values, ref, built)
        built = built_for(meta)
        results = [meta.decode_loaded(values, ref, built) for values in rows]
    except Exception:
        return None
    return None if is_missed else results


# A related model's metadata and its loaded rows by id.
_Plan = tuple[ModelMeta, dict[int, Row]]


def _build_reachable(
    stack: list[tuple[type, int]],
    built: dict[tuple[type, int], Any],
    plans: dict[type, _Plan],
    plan_of: Callable[[type], _Plan],
    decode_row: Callable[[ModelMeta, Row, Callable[[type, int], Any]], Any],
    ref: Callable[[type, int], Any],
) -> None:
    """Decode every row reachable from `stack`, children before parents."""
    expanded: set[tuple[type, int]] = set()
    while stack:
        node = stack[-1]
        if node in built:
            stack.pop()
            continue
        node_meta, rows_by_id = plans.get(node[0]) or plan_of(node[0])
        row = rows_by_id.get(node[1])
        if row is None:  # not loaded: left to `ref` as a lazy row
            stack.pop()
        elif node in expanded:
            stack.pop()
            built[node] = decode_row(node_meta, row, ref)
        else:
            expanded.add(node)
            for index, target in node_meta.related:
                child = (target, row[index])
                if (
                    child[1] is not None
                    and child not in built
                    and child not in expanded
                ):
                    stack.append(child)


def related_models(model: type) -> list[ModelMeta]:
    """`model`'s metadata and that of every model it reaches through related fields."""
    found: dict[type, ModelMeta] = {}
    stack = [model]
    while stack:
        current = stack.pop()
        if current in found:
            continue
        meta = found[current] = get_meta(current)
        stack.extend(target for _, target in meta.related if is_model(target))
    return list(found.values())
