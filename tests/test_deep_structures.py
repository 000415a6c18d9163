"""Deep trees and chains: saved and loaded whole, without recursion, few queries."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
from dbcheck import count_rows, select_statements
from micro_namedtuple_sqlite_persister import (
    Engine,
    RowNotFoundError,
    ValueNotStorableError,
)
from models import Part, Part_ChildIds, Tally

TREE_LEVELS = 13
TREE_NODES = 2**TREE_LEVELS - 1  # 8,191, the notebook's BOM
CHAIN_LENGTH = 5000


def build_tree(levels: int) -> Part:
    """A full binary tree of unsaved parts, built bottom-up without recursion."""
    level = [
        Part(None, f"leaf{i}", float(i), None, None) for i in range(2 ** (levels - 1))
    ]
    depth = 1
    while len(level) > 1:
        depth += 1
        level = [
            Part(None, f"level{depth}-{i}", -1.0, level[2 * i], level[2 * i + 1])
            for i in range(len(level) // 2)
        ]
    return level[0]


def build_chain(length: int) -> Part:
    """Parts linked through child_a, `length` deep; the last one has no child."""
    chain = None
    for i in reversed(range(length)):
        chain = Part(None, f"link{i}", float(i), chain, None)
    return chain


def walk(root: Part) -> Iterator[Part]:
    """Every part under root (root included), depth first, with an explicit stack."""
    stack = [root]
    while stack:
        part = stack.pop()
        yield part
        stack.extend(
            child for child in (part.child_a, part.child_b) if child is not None
        )


def links(root: Part) -> set[tuple]:
    """Each part as (id, name, value, child ids): the tree's content, flattened."""
    return {(part.id, part.name, part.value, *child_ids(part)) for part in walk(root)}


def child_ids(part: Part) -> tuple[int | None, int | None]:
    children = (part.child_a, part.child_b)
    return tuple(None if child is None else child.id for child in children)


def chain_names(root: Part) -> list[str]:
    names = []
    part = root
    while part is not None:
        names.append(part.name)
        part = part.child_a
    return names


@pytest.fixture
def parts(engine: Engine) -> Engine:
    engine.ensure_table_created(Part)
    engine.commit()
    return engine


def test_recursion_limit_is_the_default_for_these_tests() -> None:
    assert sys.getrecursionlimit() <= 1000


# -- the 13-level tree -----------------------------------------------------------------


def test_tree_of_8191_parts_saves_deep_with_every_id(parts: Engine) -> None:
    saved = parts.save(build_tree(TREE_LEVELS), deep=True)

    ids = [part.id for part in walk(saved)]
    assert len(ids) == TREE_NODES
    assert None not in ids
    assert len(set(ids)) == TREE_NODES
    assert count_rows(parts.connection, "Part") == TREE_NODES


def test_tree_of_8191_parts_loads_deep_as_saved(parts: Engine) -> None:
    saved = parts.save(build_tree(TREE_LEVELS), deep=True)
    parts.commit()

    loaded = parts.find(Part, saved.id, deep=True)

    assert links(loaded) == links(saved)


def test_tree_loads_deep_with_one_query_per_level(parts: Engine, statements) -> None:
    saved = parts.save(build_tree(TREE_LEVELS), deep=True)
    statements.clear()

    loaded = parts.find(Part, saved.id, deep=True)

    assert sum(1 for _ in walk(loaded)) == TREE_NODES
    assert len(select_statements(statements)) == TREE_LEVELS


def test_tree_loaded_deep_holds_real_parts_not_lazy_rows(parts: Engine) -> None:
    saved = parts.save(build_tree(4), deep=True)

    loaded = parts.find(Part, saved.id, deep=True)

    assert all(type(part) is Part for part in walk(loaded))


# -- the 5,000-deep chain --------------------------------------------------------------


def test_chain_5000_deep_saves_and_loads_deep(parts: Engine) -> None:
    saved = parts.save(build_chain(CHAIN_LENGTH), deep=True)
    parts.commit()

    loaded = parts.find(Part, saved.id, deep=True)

    expected = [f"link{i}" for i in range(CHAIN_LENGTH)]
    assert chain_names(saved) == expected
    assert chain_names(loaded) == expected
    assert count_rows(parts.connection, "Part") == CHAIN_LENGTH


def test_deep_chain_sharing_one_leaf_saves_every_row_once(parts: Engine) -> None:
    # Deeper than the recursion a deep save starts with, so it finishes with the
    # walk; the rows it saved before that, the shared leaf first, are not saved
    # again.
    leaf = Part(None, "shared leaf", 0.0, None, None)
    chain = None
    for i in reversed(range(300)):
        chain = Part(None, f"link{i}", float(i), chain, leaf)

    saved = parts.save(chain, deep=True)

    assert count_rows(parts.connection, "Part") == 301
    assert chain_names(saved) == [f"link{i}" for i in range(300)]
    assert {part.child_b.id for part in walk(saved) if part.child_b} == {
        saved.child_b.id
    }
    assert parts.find(Part, saved.id, deep=True) == saved


def test_chain_loads_deep_with_one_query_per_level(parts: Engine, statements) -> None:
    saved = parts.save(build_chain(CHAIN_LENGTH), deep=True)
    statements.clear()

    parts.find(Part, saved.id, deep=True)

    assert len(select_statements(statements)) == CHAIN_LENGTH


def test_chain_5000_deep_can_be_walked_lazily(parts: Engine) -> None:
    saved = parts.save(build_chain(CHAIN_LENGTH), deep=True)

    loaded = parts.find(Part, saved.id)

    assert len(chain_names(loaded)) == CHAIN_LENGTH


# -- failures leave no partial tree ----------------------------------------------------


def test_deep_save_failing_part_way_leaves_no_part(parts: Engine, statements) -> None:
    tree = build_tree(6)
    stale = tree.child_a._replace(id=999_999)  # saved after its subtree is inserted

    with pytest.raises(RowNotFoundError):
        parts.save(tree._replace(child_a=stale), deep=True)
    parts.commit()

    assert any(sql.startswith("INSERT") for sql in statements)
    assert count_rows(parts.connection, "Part") == 0


def test_deep_save_with_unstorable_value_at_the_root_leaves_no_row(
    engine: Engine,
) -> None:
    engine.ensure_table_created(Tally)
    tally = None
    for total in range(50):
        tally = Tally(None, total, tally)
    too_big = Tally(None, 2**64, tally)  # children are saved first, the root last

    with pytest.raises(ValueNotStorableError):
        engine.save(too_big, deep=True)
    engine.commit()

    assert count_rows(engine.connection, "Tally") == 0


def test_deep_save_failure_keeps_earlier_writes_of_the_transaction(
    parts: Engine,
) -> None:
    kept = parts.save(Part(None, "kept", 1.0, None, None))
    stale_child = Part(424242, "gone", 0.0, None, None)

    with pytest.raises(RowNotFoundError):
        parts.save(Part(None, "parent", 2.0, stale_child, None), deep=True)
    parts.commit()

    assert parts.find(Part, kept.id) == kept
    assert count_rows(parts.connection, "Part") == 1


# -- cycles ----------------------------------------------------------------------------


@pytest.fixture
def cycle(parts: Engine) -> tuple[Part, Part, Part]:
    """Three parts a -> b -> c, then c -> a through the int-id view."""
    unsaved_b = Part(None, "b", 2.0, Part(None, "c", 3.0, None, None), None)
    a = parts.save(Part(None, "a", 1.0, unsaved_b, None), deep=True)
    b, c = a.child_a, a.child_a.child_a
    parts.save(Part_ChildIds(c.id, "c", 3.0, a.id, None))
    parts.commit()
    return a, b, c


@pytest.mark.timeout(10)
def test_cycle_loads_deep_without_hanging(parts: Engine, cycle) -> None:
    a, b, c = cycle

    loaded = parts.find(Part, a.id, deep=True)

    hops = [loaded.id, loaded.child_a.id, loaded.child_a.child_a.id]
    assert hops == [a.id, b.id, c.id]
    assert loaded.child_a.child_a.child_a.id == a.id


@pytest.mark.timeout(10)
def test_cycle_can_be_followed_lazily_round_and_round(parts: Engine, cycle) -> None:
    a, b, c = cycle

    part = parts.find(Part, a.id)
    names = []
    for _ in range(7):
        names.append(part.name)
        part = part.child_a

    assert names == ["a", "b", "c", "a", "b", "c", "a"]


@pytest.mark.timeout(10)
def test_cycle_loads_deep_with_one_query_per_hop_until_closed(
    parts: Engine, cycle, statements
) -> None:
    a, _, _ = cycle
    statements.clear()

    parts.find(Part, a.id, deep=True)

    # the root, then one query per level until the cycle is closed: b, c, a
    assert len(select_statements(statements)) <= 4
