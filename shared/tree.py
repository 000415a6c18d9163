"""Trees of related rows: flattened for a deep save, rebuilt after a deep load.

Both walks use an explicit stack, so a chain thousands of rows deep never reaches
Python's recursion limit, and a row shared by several parents is handled once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .convert import explain_encode_error
from .core import Loaded, Node, Row
from .lazy import LazyRow
from .model import ModelMeta, get_meta, is_model


def flatten_tree(root: Any) -> tuple[list[Node], list[Any]]:
    """The rows of `root`'s tree as deep-save nodes, children before parents.

    Returns (nodes, rows): rows[i] is the model instance nodes[i] came from.
    Related rows that are LazyRows or plain ids are referenced, not saved again.
    """
    nodes: list[Node] = []
    rows: list[Any] = []
    index_of: dict[int, int] = {}
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        row, is_expanded = stack.pop()
        if id(row) in index_of:
            continue
        meta = get_meta(type(row))
        if not is_expanded:
            meta.require_table()
            stack.append((row, True))
            stack.extend(
                (row[i], False) for i, _ in meta.related if _is_unsaved(row[i])
            )
            continue
        index_of[id(row)] = len(nodes)
        nodes.append(_node(meta, row, index_of))
        rows.append(row)
    return nodes, rows


def _is_unsaved(value: Any) -> bool:
    """True for a model instance a deep save must visit (not None, id or LazyRow)."""
    return (
        value is not None and type(value) is not int and not isinstance(value, LazyRow)
    )


def _node(meta: ModelMeta, row: Any, index_of: dict[int, int]) -> Node:
    try:
        values = list(meta.encode_deep(row))
    except Exception as exc:
        raise explain_encode_error(meta, row, exc) from exc
    refs = []
    for field_index, _ in meta.related:
        child = row[field_index]
        if child is None:
            continue
        if _is_unsaved(child):
            refs.append((field_index - 1, index_of[id(child)]))
        else:
            values[field_index - 1] = child if type(child) is int else child.id
    return (meta.spec.key, row[0], values, refs)


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
    built: dict[tuple[str, int], Any] = {}
    metas: dict[type, ModelMeta] = {}

    def meta_of(model: type) -> ModelMeta:
        found = metas.get(model)
        if found is None:
            found = metas[model] = get_meta(model)
        return found

    def ref(model: type, row_id: int) -> Any:
        row = built.get((meta_of(model).spec.key, row_id))
        return lazy(model, row_id) if row is None else row

    results = []
    for values in rows:
        _build_related(meta, values, loaded, built, meta_of, decode_row, ref)
        results.append(decode_row(meta, values, ref))
    return results


def _build_related(
    meta: ModelMeta,
    values: Row,
    loaded: Loaded,
    built: dict[tuple[str, int], Any],
    meta_of: Callable[[type], ModelMeta],
    decode_row: Callable[[ModelMeta, Row, Callable[[type, int], Any]], Any],
    ref: Callable[[type, int], Any],
) -> None:
    """Decode every row `values` reaches, children before parents (post-order)."""
    visiting: set[tuple[str, int]] = set()
    stack = [(meta_of(t), values[i]) for i, t in meta.related if values[i] is not None]
    while stack:
        node_meta, row_id = stack[-1]
        node = (node_meta.spec.key, row_id)
        row = loaded.get(node[0], {}).get(row_id)
        if node in built or row is None:
            stack.pop()
            continue
        if node not in visiting:
            visiting.add(node)
            for index, target in node_meta.related:
                child_id = row[index]
                target_meta = meta_of(target)
                child = (target_meta.spec.key, child_id)
                if (
                    child_id is not None
                    and child not in built
                    and child not in visiting
                ):
                    stack.append((target_meta, child_id))
            continue
        stack.pop()
        built[node] = decode_row(node_meta, row, ref)


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
