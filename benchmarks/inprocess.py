"""Group 1, in-process: our `Engine` against hand-written `sqlite3` (the floor).

The workloads are the seed notebook's performance cells at full size: insert
17,000 `MyModel` rows one `save` at a time, update them, find each by id, a
`find_by`, the notebook's `high_scores` select, deletes, and a deep save and a
deep find of the notebook's 13-level `BOM` binary tree (8,191 nodes).

Fairness, per repetition: each contender gets its own fresh database file (WAL)
in a new temporary directory, the same rows and tree, the same schema and
connection settings (checked before timing), and commits at the same points.
Inputs are built before the clock starts. Contenders run each workload in turn,
in reversed order every other repetition, and their answers are compared after
the clock stops, so a contender cannot win by doing less. One warm-up
repetition runs first and is not recorded.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import random
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from micro_namedtuple_sqlite_persister.persister import Engine
from micro_namedtuple_sqlite_persister.query import select

from .common import (
    Progress,
    Result,
    Timings,
    UnfairComparisonError,
    Workload,
    in_turn,
    register_group,
    time_call,
)
from .raw_sqlite import NAME_INDEX_SQL, HandWrittenSqlite, Row, database_settings


class MyModel(NamedTuple):
    id: int | None
    name: str
    date: dt.datetime
    score: float | None


class BOM(NamedTuple):
    id: int | None
    name: str
    value: float
    child_a: BOM | None
    child_b: BOM | None


@select(MyModel)
def high_scores() -> str:
    return f"WHERE {MyModel.score} > 95.7"


class Size(NamedTuple):
    """How big a run is: rows per batch, tree depth, timed repetitions."""

    rows: int
    tree_levels: int
    repetitions: int
    select_repeats: int


FULL = Size(rows=17_000, tree_levels=13, repetitions=11, select_repeats=20)
QUICK = Size(rows=2_000, tree_levels=9, repetitions=2, select_repeats=5)

ENGINE = "Engine"
RAW = "sqlite3"
RAW_PER_NODE = "sqlite3, one query per node"
CONTENDERS = (ENGINE, RAW)

NOTES = """
Contenders: **Engine** is `micro_namedtuple_sqlite_persister.Engine` used as the
notebook uses it. **sqlite3** (the baseline) is the same work written by hand:
constant prepared SQL, plain tuples, `isoformat`/`fromisoformat` for datetimes,
the same schema (types, NOT NULL, REFERENCES) and settings (WAL,
synchronous=NORMAL, foreign_keys=ON), a commit after each write batch. For deep
find the baseline loads the tree one query per level (`id IN (...)`), as a
careful person would; **sqlite3, one query per node** is the naive recursive
version, shown for scale. `find_by` looks rows up by a unique name through an
index both contenders create before it (untimed); `select` runs the notebook's
`high_scores` query (`score > 95.7`) 20 times per timed run (5 with `--quick`),
and its rows count every row returned. Each repetition uses fresh database files;
one warm-up repetition runs first and is not counted. Per row = median time / rows.
"""


class Dataset(NamedTuple):
    """One repetition's inputs, shared by every contender, built before timing."""

    new_rows: list[Row]
    updated_rows: list[Row]
    lookup_ids: list[int]
    lookup_names: list[str]
    tree: Row
    tree_nodes: int


def make_dataset(size: Size, seed: int) -> Dataset:
    """Rows like the notebook's (distinct names, so find_by has one answer each)."""
    rng = random.Random(seed)
    start = dt.datetime(2025, 1, 1, 9, 30)
    new_rows = [
        (None, f"foo{index:05d}", _moment(rng, start), rng.random() * 100)
        for index in range(size.rows)
    ]
    # A fresh table numbers its rows 1, 2, ...; the harness checks that it did.
    updated_rows = [
        (index, name, _moment(rng, start), rng.random() * 100)
        for index, (_, name, _, _) in enumerate(new_rows, start=1)
    ]
    lookup_ids = list(range(1, size.rows + 1))
    rng.shuffle(lookup_ids)
    lookup_names = [new_rows[row_id - 1][1] for row_id in lookup_ids]
    tree = make_tree(rng, size.tree_levels)
    nodes = 2**size.tree_levels - 1
    return Dataset(new_rows, updated_rows, lookup_ids, lookup_names, tree, nodes)


def _moment(rng: random.Random, start: dt.datetime) -> dt.datetime:
    return start + dt.timedelta(microseconds=rng.randrange(1, 10**12))


def make_tree(rng: random.Random, levels: int) -> Row:
    """The notebook's BOM: a full binary tree, children before parents, no recursion."""
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    below: list[Row | None] = [None] * 2**levels
    for depth in range(1, levels + 1):
        count = 2 ** (levels - depth)
        below = [
            (
                None,
                "".join(rng.choice(letters) for _ in range(3)) + f"{depth:05d}_{index}",
                rng.random() * 1000 - 500,
                below[2 * index],
                below[2 * index + 1],
            )
            for index in range(count)
        ]
    root = below[0]
    assert root is not None
    return root


def as_bom(node: Row | None) -> BOM | None:
    """The plain tuple tree as unsaved BOM rows (before timing)."""
    if node is None:
        return None
    _, name, value, child_a, child_b = node
    return BOM(None, name, value, as_bom(child_a), as_bom(child_b))


def without_ids(node: Any) -> Any:
    """A tree with every id removed, to compare trees whose ids were assigned apart."""
    if node is None:
        return None
    return (node[1], node[2], without_ids(node[3]), without_ids(node[4]))


class EngineSide:
    """The notebook's workloads through `Engine`, as the notebook writes them."""

    def __init__(self, path: str) -> None:
        self.engine = Engine(path, synchronous="normal")
        self.engine.ensure_table_created(MyModel)
        self.engine.ensure_table_created(BOM)
        self.engine.commit()
        self.root_id: int | None = None

    def close(self) -> None:
        self.engine.close()

    def insert(self, rows: Sequence[MyModel]) -> list[MyModel]:
        saved = [self.engine.save(row) for row in rows]
        self.engine.commit()
        return saved

    def update(self, rows: Sequence[MyModel]) -> list[MyModel]:
        saved = [self.engine.save(row) for row in rows]
        self.engine.commit()
        return saved

    def find(self, ids: Sequence[int]) -> list[MyModel]:
        return [self.engine.find(MyModel, row_id) for row_id in ids]

    def create_name_index(self) -> None:
        self.engine.connection.execute(NAME_INDEX_SQL)
        self.engine.commit()

    def find_by_name(self, names: Sequence[str]) -> list[MyModel | None]:
        return [self.engine.find_by(MyModel, name=name) for name in names]

    def select_high_scores(self, repeats: int) -> list[list[MyModel]]:
        return [self.engine.query(*high_scores()).fetchall() for _ in range(repeats)]

    def delete(self, ids: Sequence[int]) -> None:
        for row_id in ids:
            self.engine.delete(MyModel, row_id)
        self.engine.commit()

    def deep_save(self, root: BOM) -> BOM:
        saved = self.engine.save(root, deep=True)
        self.engine.commit()
        self.root_id = saved.id
        return saved

    def deep_find(self) -> BOM:
        if self.root_id is None:
            raise RuntimeError("deep_find needs a tree: run deep_save first.")
        return self.engine.find(BOM, self.root_id, deep=True)


class Step(NamedTuple):
    """One timed workload: a call per contender and the answer each must give.

    `comparable(answer)` must equal `expected` for every contender, checked after
    the clock stops; `prepare` runs untimed before the first contender.
    """

    workload: Workload
    calls: dict[str, Callable[[], Any]]
    expected: Any
    comparable: Callable[[Any], Any] = lambda answer: answer
    prepare: tuple[Callable[[], None], ...] = ()


def make_steps(
    engine: EngineSide, raw: HandWrittenSqlite, data: Dataset, size: Size
) -> list[Step]:
    """The workloads in notebook order; each one starts where the previous ended."""
    return row_steps(engine, raw, data, size) + tree_steps(engine, raw, data)


def _workload(name: str, rows: int, target: float | None = None) -> Workload:
    return Workload(name, rows, RAW, CONTENDERS, target, ENGINE)


def _calls(
    engine_call: Callable[[], Any], raw_call: Callable[[], Any]
) -> dict[str, Callable[[], Any]]:
    return {ENGINE: engine_call, RAW: raw_call}


def row_steps(
    engine: EngineSide, raw: HandWrittenSqlite, data: Dataset, size: Size
) -> list[Step]:
    """Insert, update, find, find_by, select and delete of the MyModel rows."""
    rows, repeats = len(data.new_rows), size.select_repeats
    new_models = [MyModel(*row) for row in data.new_rows]
    updated_models = [MyModel(*row) for row in data.updated_rows]
    inserted = [(row_id, *row[1:]) for row_id, row in enumerate(data.new_rows, 1)]
    looked_up = [data.updated_rows[row_id - 1] for row_id in data.lookup_ids]
    high = [row for row in data.updated_rows if row[3] > 95.7]
    return [
        Step(
            _workload("insert-save", rows, 1.5),
            _calls(
                lambda: engine.insert(new_models), lambda: raw.insert(data.new_rows)
            ),
            inserted,
        ),
        Step(
            _workload("update-save", rows, 1.5),
            _calls(
                lambda: engine.update(updated_models),
                lambda: raw.update(data.updated_rows),
            ),
            data.updated_rows,
        ),
        Step(
            _workload("find by id", rows, 1.3),
            _calls(
                lambda: engine.find(data.lookup_ids), lambda: raw.find(data.lookup_ids)
            ),
            looked_up,
        ),
        Step(
            _workload("find_by (indexed name)", rows),
            _calls(
                lambda: engine.find_by_name(data.lookup_names),
                lambda: raw.find_by_name(data.lookup_names),
            ),
            looked_up,
            prepare=(engine.create_name_index, raw.create_name_index),
        ),
        Step(
            _workload("select score > 95.7", len(high) * repeats),
            _calls(
                lambda: engine.select_high_scores(repeats),
                lambda: raw.select_high_scores(repeats),
            ),
            [high] * repeats,
        ),
        Step(
            _workload("delete", rows),
            _calls(
                lambda: engine.delete(data.lookup_ids),
                lambda: raw.delete(data.lookup_ids),
            ),
            None,
        ),
    ]


def tree_steps(engine: EngineSide, raw: HandWrittenSqlite, data: Dataset) -> list[Step]:
    """Deep save of the BOM tree, then deep find of it (three ways for sqlite3)."""
    tree_model = as_bom(data.tree)
    assert tree_model is not None
    tree = without_ids(data.tree)
    deep_find = Workload(
        "deep find", data.tree_nodes, RAW, (*CONTENDERS, RAW_PER_NODE), 1.2, ENGINE
    )
    return [
        Step(
            _workload("deep save", data.tree_nodes, 1.5),
            _calls(
                lambda: engine.deep_save(tree_model), lambda: raw.deep_save(data.tree)
            ),
            tree,
            comparable=without_ids,
        ),
        Step(
            deep_find,
            {
                ENGINE: engine.deep_find,
                RAW: raw.deep_find,
                RAW_PER_NODE: raw.deep_find_per_node,
            },
            tree,
            comparable=without_ids,
        ),
    ]


def run_step(step: Step, repetition: int, timings: Timings | None) -> None:
    """Time each contender once (order alternating by repetition), then check answers.

    Raises UnfairComparisonError naming the contender whose answer differs from the
    expected one: a faster wrong answer must not count.
    """
    for prepare in step.prepare:
        prepare()
    answers = {}
    for contender in in_turn(step.workload.contenders, repetition):
        seconds, answers[contender] = time_call(step.calls[contender])
        if timings is not None:
            timings.add(step.workload.name, contender, seconds)
    for contender, answer in answers.items():
        if step.comparable(answer) != step.expected:
            raise UnfairComparisonError(
                f"{contender} gave a different answer on {step.workload.name!r}; "
                "the benchmark compares only contenders that do the same work."
            )


@contextlib.contextmanager
def fresh_contenders() -> Iterator[tuple[EngineSide, HandWrittenSqlite]]:
    """Both contenders on new database files in a new temporary directory.

    Raises UnfairComparisonError if their schemas or connection settings differ.
    """
    with tempfile.TemporaryDirectory(prefix="mnsp-bench-") as directory:
        engine = EngineSide(str(Path(directory) / "engine.db"))
        raw = HandWrittenSqlite(str(Path(directory) / "sqlite3.db"))
        try:
            engine_settings = database_settings(engine.engine.connection)
            raw_settings = database_settings(raw.connection)
            if engine_settings != raw_settings:
                raise UnfairComparisonError(
                    "the hand-written schema or settings differ from Engine's:\n"
                    f"  Engine:  {engine_settings}\n  sqlite3: {raw_settings}"
                )
            yield engine, raw
        finally:
            engine.close()
            raw.close()


WARM_UP = -1


@register_group("inprocess", "In-process: Engine against hand-written sqlite3", NOTES)
def run_inprocess(quick: bool, progress: Progress) -> list[Result]:
    """Every workload, one warm-up repetition then `size.repetitions` timed ones."""
    size = QUICK if quick else FULL
    timings = Timings("inprocess")
    schedule = [WARM_UP, *range(size.repetitions)]
    steps: list[Step] = []
    for repetition in schedule:
        label = (
            "warm-up"
            if repetition == WARM_UP
            else f"{repetition + 1}/{size.repetitions}"
        )
        progress.set_description(f"in-process, repetition {label}")
        data = make_dataset(size, seed=repetition)
        with fresh_contenders() as (engine, raw):
            steps = make_steps(engine, raw, data, size)
            if repetition == WARM_UP:
                progress.reset(total=len(steps) * len(schedule))
            for step in steps:
                run_step(step, repetition, None if repetition == WARM_UP else timings)
                progress.update(1)
    return timings.results([step.workload for step in steps])
