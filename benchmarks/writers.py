"""Group 3, many writers: N processes saving rows, four ways, two durabilities.

Each worker process saves its own deterministic rows one at a time, each
acknowledged before the next, for a fixed time. Contenders: our server (each
worker a client), the same SQLite file written directly by every worker (WAL,
busy_timeout, commit per row), a BaseManager process owning one sqlite3
connection, and PostgreSQL on loopback when it can be started here. After each
run the rows in the database are counted against the saves the workers
reported, so a contender cannot win by losing rows.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from micro_namedtuple_sqlite_persister.client import connect
from micro_namedtuple_sqlite_persister.server.process import ServerProcess

from . import ops
from .common import (
    Progress,
    Result,
    UnfairComparisonError,
    add_run_note,
    in_turn,
    register_group,
)
from .manager import running_store_manager
from .postgres import PostgresCluster, PostgresUnavailableError, throwaway_cluster
from .processes import Job, Opener, Summary, WorkerPool, summarize
from .throughput import (
    SweepPoint,
    SweepTimings,
    render_sweep_table,
    sweep_chart_drawer,
    sweep_workload,
)
from .transport import running_echo

GROUP = "writers"
SERVER = "our server"
DIRECT = "direct SQLite (WAL)"
MANAGER = "BaseManager + sqlite3"
POSTGRES = "PostgreSQL"
ECHO = "pyzmq echo, no database"
# The baseline of each durability is the contender its target names.
BASELINES = {"normal": MANAGER, "full": DIRECT}
TARGET_WORKERS = 8
THROUGHPUT_TARGETS = {"normal": 1.3, "full": 2.5}
LATENCY_TARGET_MS = {"normal": 5.0}


class Sweep(NamedTuple):
    """How much a run measures: process counts, seconds per point, repetitions."""

    worker_counts: tuple[int, ...]
    durabilities: tuple[str, ...]
    seconds: float
    warm_up: int
    repetitions: int


FULL = Sweep((1, 2, 4, 8, 16), ("normal", "full"), 2.0, 30, 5)
QUICK = Sweep((1, 4), ("normal", "full"), 0.3, 3, 1)

NOTES = f"""
Each of N worker processes saves its own rows one at a time, waiting for each
save to be acknowledged, for {FULL.seconds:g} s per run ({QUICK.seconds:g} s with
`--quick`); throughput is all rows saved divided by the window from the first
worker's start to the last one's end. Workers are started before the clock, open
their connection and save {FULL.warm_up} untimed warm-up rows, then wait on one
start barrier. Every contender gets a fresh database each run and the same rows.
Contenders: **{SERVER}** (each worker a client, `save`); **{DIRECT}** (each worker
its own sqlite3 connection, busy_timeout {ops.BUSY_TIMEOUT_S:g} s, insert + commit
per row; a "database is locked" past the timeout is an error, not retried);
**{MANAGER}** (a `multiprocessing.managers.BaseManager` process on a Unix socket,
one connection behind a lock, insert + commit per call); **{POSTGRES}** on
127.0.0.1 (`INSERT ... RETURNING id`, autocommit, prepared), when available;
**{ECHO}**: each worker's request, the size of our save's, sent to a pyzmq ROUTER
that returns it and stores nothing, the ceiling for any server behind pyzmq
(it stores no rows, so it is the one contender whose rows are not counted).
Durability *normal*: SQLite `synchronous=NORMAL` in WAL (no fsync per commit),
PostgreSQL `synchronous_commit=off`; *full*: SQLite `synchronous=FULL`,
PostgreSQL `synchronous_commit=on` (fsync on in both). Baseline: {MANAGER} for
normal, {DIRECT} for full, the contenders issue 3's targets name. Latencies are
of successful saves only; errors are counted over all repetitions. Each
repetition runs every point once, the contenders in alternating order.
"""


class Target(NamedTuple):
    """A contender ready for one run: how workers open it, how to count its rows.

    `count_rows` is None for the echo, which stores nothing.
    """

    opener: Opener
    args_for: Callable[[int], tuple[Any, ...]]
    count_rows: Callable[[], int] | None


@contextlib.contextmanager
def fresh_target(
    contender: str, durability: str, directory: Path, cluster: PostgresCluster | None
) -> Iterator[Target]:
    """The contender on a new, empty database, its processes started; stopped after."""
    path = str(directory / f"{contender.split()[0].lower()}.db")
    if contender == POSTGRES:
        assert cluster is not None
        cluster.reset_table()
        dsn = cluster.dsn_for(durability)
        yield Target(ops.postgres_saver, lambda w: (dsn, w), cluster.count_rows)
        return
    if contender == ECHO:
        address = f"ipc://{directory}/echo.sock"
        with running_echo([address]):
            yield Target(ops.echo_saver, lambda w: (address, w), None)
        return
    ops.create_sqlite_table(path)
    try:
        with _sqlite_target(contender, durability, path) as target:
            yield target
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(path + suffix).unlink(missing_ok=True)


@contextlib.contextmanager
def _sqlite_target(contender: str, durability: str, path: str) -> Iterator[Target]:
    def count() -> int:
        return ops.count_sqlite_rows(path)

    if contender == DIRECT:
        yield Target(ops.direct_saver, lambda w: (path, durability, w), count)
    elif contender == MANAGER:
        with running_store_manager(path, durability) as (address, key):
            yield Target(ops.manager_saver, lambda w: (address, key, w), count)
    else:
        with ServerProcess(path, synchronous=durability) as server:
            with connect(server.address) as engine:
                engine.ensure_table_created(ops.MyModel)
            address = server.address
            yield Target(ops.server_saver, lambda w: (address, w), count)


def run_point(pool: WorkerPool, target: Target, workers: int, sweep: Sweep) -> Summary:
    """One timed run of `workers` processes against `target`; its Summary.

    Raises UnfairComparisonError if the database holds other than the rows the
    workers say they saved (warm-up rows included).
    """
    jobs = [
        Job(target.opener, target.args_for(worker), sweep.seconds, sweep.warm_up)
        for worker in range(workers)
    ]
    outcomes = pool.run(jobs)
    summary = summarize(outcomes)
    if target.count_rows is None:
        return summary
    expected = summary.operations + workers * sweep.warm_up
    stored = target.count_rows()
    if stored != expected:
        raise UnfairComparisonError(
            f"{stored} rows stored but {expected} saves acknowledged; the benchmark "
            "counts only contenders that keep every acknowledged row."
        )
    return summary


class WriterPoint(NamedTuple):
    """One point of the sweep: a durability and a number of worker processes."""

    durability: str
    workers: int
    point: SweepPoint


def make_points(sweep: Sweep, contenders: tuple[str, ...]) -> list[WriterPoint]:
    points = []
    for durability in sweep.durabilities:
        for workers in sweep.worker_counts:
            has_target = workers == TARGET_WORKERS
            point = SweepPoint(
                sweep_workload(f"durability {durability}", workers, "workers"),
                BASELINES[durability],
                contenders,
                SERVER,
                THROUGHPUT_TARGETS.get(durability) if has_target else None,
                LATENCY_TARGET_MS.get(durability) if has_target else None,
            )
            points.append(WriterPoint(durability, workers, point))
    return points


def open_postgres(stack: contextlib.ExitStack) -> PostgresCluster | None:
    """A throw-away cluster kept until `stack` closes, or None with the reason noted."""
    try:
        return stack.enter_context(throwaway_cluster())
    except PostgresUnavailableError as exc:
        add_run_note(GROUP, f"PostgreSQL skipped: {exc}")
        return None


def note_errors(errors: dict[str, Counter[str]]) -> None:
    for label, counts in errors.items():
        kinds = "; ".join(f"{n} × {message}" for message, n in counts.most_common(3))
        add_run_note(GROUP, f"Errors, {label}: {kinds}.")


@register_group(
    GROUP,
    "Many writers: worker processes saving rows concurrently",
    NOTES,
    render_table=render_sweep_table,
    draw_charts=sweep_chart_drawer("row", "worker processes, each saving rows"),
)
def run_writers(quick: bool, progress: Progress) -> list[Result]:
    """Every (repetition, durability, worker count, contender), in alternating order."""
    sweep = QUICK if quick else FULL
    timings = SweepTimings(GROUP)
    errors: dict[str, Counter[str]] = {}
    with contextlib.ExitStack() as stack:
        cluster = open_postgres(stack)
        contenders = (SERVER, DIRECT, MANAGER) + ((POSTGRES,) if cluster else ())
        contenders += (ECHO,)
        points = make_points(sweep, contenders)
        progress.reset(total=len(points) * len(contenders) * sweep.repetitions)
        pool = stack.enter_context(WorkerPool(max(sweep.worker_counts)))
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        for repetition in range(sweep.repetitions):
            for durability, workers, point in points:
                progress.set_description(
                    f"many writers, {point.name}, {repetition + 1}/{sweep.repetitions}"
                )
                for contender in in_turn(contenders, repetition):
                    with fresh_target(
                        contender, durability, directory, cluster
                    ) as target:
                        summary = run_point(pool, target, workers, sweep)
                    timings.add(point.name, contender, summary)
                    label = f"{contender}, {point.name}"
                    errors.setdefault(label, Counter()).update(summary.errors)
                    progress.update(1)
    note_errors({label: counts for label, counts in errors.items() if counts})
    return timings.results([point for _, _, point in points])
