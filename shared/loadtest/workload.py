"""What a worker process does: the notebook's models and its mix of operations.

Every name a worker saves starts with its marker (`<run>-w<worker>`), so the
final check can find each acknowledged row by name in a shared database.
"""

from __future__ import annotations

import datetime as dt
import random
import signal
import threading
import time
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from micro_namedtuple_sqlite_persister.adaptconvert import (
    register_standard_adaptconverters,
)
from micro_namedtuple_sqlite_persister.client import RemoteEngine, connect
from micro_namedtuple_sqlite_persister.query import select

register_standard_adaptconverters()  # datetime fields, as in the notebook

# Share of each operation in the mix: the notebook's cells, minus its one-off demos.
MIX: dict[str, int] = {
    "insert": 30,  # save a new MyModel row
    "update": 20,  # save one of this worker's rows with a new score and date
    "find": 20,  # find(MyModel, id), compared with the last acknowledged save
    "find_by": 8,  # find_by(Athlete, name=...)
    "query_join": 12,  # select(Athlete) with one or two joins
    "deep_save": 5,  # save(BOM tree, deep=True)
    "deep_find": 5,  # find(BOM, id, deep=True), compared node by node
}
TREE_LEVELS = 5  # a full binary tree: 31 nodes
REQUEST_TIMEOUT_S = 10.0
START_TIMEOUT_S = 60.0


class MyModel(NamedTuple):
    id: int | None
    name: str
    date: dt.datetime
    score: float | None


class League(NamedTuple):
    id: int | None
    leaguename: str


class Team(NamedTuple):
    id: int | None
    teamname: str
    league: League


class Athlete(NamedTuple):
    id: int | None
    name: str
    team: Team


class BOM(NamedTuple):
    id: int | None
    name: str
    value: float
    child_a: BOM | None
    child_b: BOM | None


TEAMS = {"Red": "Big", "Ramble": "Small", "Blue": "Big", "Green": "Small"}
ATHLETES = {
    "Alice": "Red",
    "Bob": "Red",
    "Charlie": "Ramble",
    "Dave": "Blue",
    "Beth": "Green",
    "Frank": "Blue",
}


@select(Athlete)
def athletes_on_red_team() -> str:
    return f"WHERE {Athlete.team.teamname} = 'Red'"


@select(Athlete)
def athletes_in_league(league: str) -> str:
    return f"WHERE {Athlete.team.league.leaguename} = {league}"


class LoadTestError(Exception):
    """The load test could not run, or what it read back was wrong."""


@dataclass
class WorkerPlan:
    """What one worker is told: where to connect, for how long, which marker."""

    index: int
    address: str
    marker: str
    seconds: float | None
    row_quota: int | None  # stop after inserting this many rows


@dataclass
class WorkerResult:
    """What one worker reports: its latencies and everything acknowledged to it."""

    index: int
    seconds: float = 0.0
    latencies: dict[str, array[float]] = field(default_factory=dict)
    rows: dict[str, tuple[int, float]] = field(default_factory=dict)  # id, score
    trees: dict[str, int] = field(default_factory=dict)  # root name: root id
    rows_written: int = 0
    error: str | None = None


def prepare_database(engine: RemoteEngine) -> None:
    """Create the tables and, once per database, the notebook's sports rows."""
    for model in (MyModel, League, Team, Athlete, BOM):
        engine.ensure_table_created(model)
    if engine.find_by(League, leaguename="Big") is not None:
        return
    leagues = engine.save_many([League(None, "Big"), League(None, "Small")])
    by_league = {league.leaguename: league for league in leagues}
    teams = engine.save_many(
        [Team(None, name, by_league[league]) for name, league in TEAMS.items()]
    )
    by_team = {team.teamname: team for team in teams}
    engine.save_many(
        [Athlete(None, name, by_team[team]) for name, team in ATHLETES.items()]
    )


def run_worker(
    plan: WorkerPlan, counters: Any, barrier: Any, stop: Any, results: Any
) -> None:
    """A worker process: connect, wait at the barrier, run, put its result.

    `counters` is a shared array of two slots per worker (operations, rows
    inserted) that only this worker writes. Ctrl-C is left to the parent, which
    sets `stop`. Any error goes into the result, so the parent always hears back.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    engine = connect(plan.address, timeout=REQUEST_TIMEOUT_S)
    worker = Worker(plan, engine)
    try:
        engine.ping()
        barrier.wait(START_TIMEOUT_S)
        worker.run(counters, stop)
    except threading.BrokenBarrierError:
        pass  # the start was called off; whoever called it off reports why
    except Exception as exc:
        barrier.abort()  # a worker failing before the start releases the others
        doing = f"doing {worker.operation}" if worker.operation else "connecting"
        worker.result.error = (
            f"worker {plan.index} failed while {doing}: {type(exc).__name__}: {exc}"
        )
    finally:
        worker.finish()
        results.put(worker.result)
        engine.close()


class Worker:
    """Runs the mix through one client until its time or row quota is used up."""

    def __init__(self, plan: WorkerPlan, engine: RemoteEngine) -> None:
        self.plan = plan
        self.engine = engine
        self.rng = random.Random()
        self.rows: list[MyModel] = []  # the last acknowledged version of each
        self.result = WorkerResult(plan.index)
        self.result.latencies = {operation: array("d") for operation in MIX}
        self._started: float | None = None
        self.operation: str | None = None  # the one running, for error messages

    def run(self, counters: Any, stop: Any) -> None:
        """Do operations until the deadline, the quota or `stop`; count each."""
        self._started = time.perf_counter()
        deadline = self._started + (self.plan.seconds or float("inf"))
        quota = self.plan.row_quota
        while not stop.is_set() and time.perf_counter() < deadline:
            if quota is not None and len(self.rows) >= quota:
                break
            self.run_one()
            counters[2 * self.plan.index] += 1
            counters[2 * self.plan.index + 1] = len(self.rows)

    def run_one(self) -> None:
        """One operation drawn from MIX, timed; LoadTestError if it read wrong."""
        operation = self.rng.choices(list(MIX), weights=list(MIX.values()))[0]
        if operation in ("update", "find") and not self.rows:
            operation = "insert"
        if operation == "deep_find" and not self.result.trees:
            operation = "deep_save"
        self.operation, started = operation, time.perf_counter()
        getattr(self, "do_" + operation)()
        self.result.latencies[operation].append(time.perf_counter() - started)

    def finish(self) -> None:
        """Record the run time and the acknowledged rows in the result."""
        if self._started is not None:
            self.result.seconds = time.perf_counter() - self._started
        for row in self.rows:
            self.result.rows[row.name] = (row.id, row.score)  # type: ignore[assignment]

    def do_insert(self) -> None:
        name = f"{self.plan.marker}-{len(self.rows)}"
        row = MyModel(None, name, dt.datetime.now(), self.rng.random() * 100)
        self.rows.append(self.engine.save(row))
        self.result.rows_written += 1

    def do_update(self) -> None:
        index = self.rng.randrange(len(self.rows))
        row = self.rows[index]._replace(
            date=dt.datetime.now(), score=self.rng.random() * 100
        )
        self.rows[index] = self.engine.save(row)
        self.result.rows_written += 1

    def do_find(self) -> None:
        expected = self.rng.choice(self.rows)
        found = self.engine.find(MyModel, expected.id)
        if found != expected:
            raise LoadTestError(f"find returned {found}, expected {expected}")

    def do_find_by(self) -> None:
        name = self.rng.choice(list(ATHLETES))
        if self.engine.find_by(Athlete, name=name) is None:
            raise LoadTestError(f"find_by(Athlete, name={name!r}) found nothing")

    def do_query_join(self) -> None:
        league = self.rng.choice(["Big", "Small", None])
        query = athletes_on_red_team() if league is None else athletes_in_league(league)
        if not self.engine.query(*query).fetchall():
            raise LoadTestError(f"the athletes query for league={league} found none")

    def do_deep_save(self) -> None:
        root_name = f"{self.plan.marker}-t{len(self.result.trees)}"
        saved = self.engine.save(build_tree(root_name, self.rng), deep=True)
        self.result.trees[root_name] = saved.id
        self.result.rows_written += 2**TREE_LEVELS - 1

    def do_deep_find(self) -> None:
        root_name, root_id = self.rng.choice(list(self.result.trees.items()))
        tree = self.engine.find(BOM, root_id, deep=True)
        names = sorted(node.name for node in walk_tree(tree))
        if names != sorted(tree_node_names(root_name)):
            raise LoadTestError(f"deep find of tree {root_name} returned {names}")


def build_tree(root_name: str, rng: random.Random, path: str = "") -> BOM:
    """A full binary BOM tree of TREE_LEVELS levels; names spell each node's path."""
    children: tuple[BOM | None, BOM | None] = (None, None)
    if len(path) < TREE_LEVELS - 1:
        children = (
            build_tree(root_name, rng, path + "a"),
            build_tree(root_name, rng, path + "b"),
        )
    name = f"{root_name}/{path}" if path else root_name
    return BOM(None, name, rng.random() * 1000 - 500, *children)


def tree_node_names(root_name: str) -> list[str]:
    """The name of every node that `build_tree(root_name, ...)` makes."""
    paths, level = [""], [""]
    for _ in range(TREE_LEVELS - 1):
        level = [path + side for path in level for side in "ab"]
        paths += level
    return [f"{root_name}/{path}" if path else root_name for path in paths]


def walk_tree(root: BOM | None) -> Iterator[BOM]:
    """Every node of a loaded tree, parents first."""
    if root is None:
        return
    yield root
    yield from walk_tree(root.child_a)
    yield from walk_tree(root.child_b)
