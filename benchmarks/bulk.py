"""Group 5, bulk: `save_many` of 17,000 rows through the server against in-process.

Our client sends the rows in one request; the server saves them in one
transaction and commits before it replies. The in-process `Engine` saves the
same rows with `save_many` and commits. Each repetition gives each contender a
new database file (the server started before the clock), and the rows each
returns, ids included, must be the same.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import NamedTuple

from micro_namedtuple_sqlite_persister import Engine
from micro_namedtuple_sqlite_persister.client import connect
from micro_namedtuple_sqlite_persister.server.process import ServerProcess

from . import ops
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

GROUP = "bulk"
SERVER = "our server (client save_many)"
ENGINE = "Engine save_many (in-process)"
CONTENDERS = (SERVER, ENGINE)
WARM_UP = -1


class Size(NamedTuple):
    rows: int
    repetitions: int


FULL = Size(rows=17_000, repetitions=7)
QUICK = Size(rows=1_000, repetitions=1)

NOTES = f"""
`save_many` of {FULL.rows:,} new `MyModel` rows ({QUICK.rows:,} with `--quick`) in
one call. **{SERVER}**: one request to a server started before the clock on a new
file; the time includes converting the rows in the client, the request, the
server's transaction and commit, and the reply with the ids. **{ENGINE}** (the
baseline): the same rows on a new file in this process, then `commit()`. Both
synchronous=normal, WAL. One untimed warm-up repetition runs first.
"""


Saver = Callable[[list[ops.MyModel]], list[ops.MyModel]]


@contextlib.contextmanager
def server_saver(directory: Path) -> Iterator[Saver]:
    """save_many through a fresh server; the table is created before timing."""
    with ServerProcess(directory / "server.db", synchronous="normal") as server:
        with connect(server.address, timeout=ops.CLIENT_TIMEOUT_S) as engine:
            engine.ensure_table_created(ops.MyModel)
            yield engine.save_many


@contextlib.contextmanager
def engine_saver(directory: Path) -> Iterator[Saver]:
    """save_many and commit on a fresh in-process Engine."""
    with Engine(str(directory / "engine.db"), synchronous="normal") as engine:
        engine.ensure_table_created(ops.MyModel)
        engine.commit()

        def save_many(rows: list[ops.MyModel]) -> list[ops.MyModel]:
            saved = engine.save_many(rows)
            engine.commit()
            return saved

        yield save_many


OPENERS = {SERVER: server_saver, ENGINE: engine_saver}


def run_repetition(
    rows: list[ops.MyModel], repetition: int, timings: Timings | None, name: str
) -> None:
    """Each contender once on a new file; UnfairComparisonError if answers differ."""
    answers = {}
    for contender in in_turn(CONTENDERS, repetition):
        with tempfile.TemporaryDirectory(prefix="mnsp-bench-") as directory:
            with OPENERS[contender](Path(directory)) as save_many:
                seconds, answers[contender] = time_call(partial(save_many, rows))
        if timings is not None:
            timings.add(name, contender, seconds)
    if answers[SERVER] != answers[ENGINE]:
        raise UnfairComparisonError(
            "save_many through the server returned other rows than the Engine's; "
            "the benchmark compares only contenders that do the same work."
        )


@register_group(GROUP, "Bulk: save_many through the server against in-process", NOTES)
def run_bulk(quick: bool, progress: Progress) -> list[Result]:
    """One warm-up repetition, then `size.repetitions` timed ones."""
    size = QUICK if quick else FULL
    timings = Timings(GROUP)
    rows = [ops.make_row(0, index) for index in range(size.rows)]
    workload = Workload(f"save_many {size.rows:,} rows", size.rows, ENGINE, CONTENDERS)
    progress.reset(total=size.repetitions + 1)
    for repetition in range(WARM_UP, size.repetitions):
        label = "warm-up" if repetition == WARM_UP else repetition + 1
        progress.set_description(f"bulk, repetition {label}/{size.repetitions}")
        recorded = None if repetition == WARM_UP else timings
        run_repetition(rows, repetition, recorded, workload.name)
        progress.update(1)
    return timings.results([workload])
