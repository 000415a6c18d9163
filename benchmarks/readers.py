"""Group 4, readers: N processes finding rows by id while 2 writers keep writing.

Both contenders start each run from a copy of the same file holding the
preloaded rows. With **our server**, readers call `engine.find` and the two
writers `engine.save`, all through the server. With **direct read-only**, the
readers open the file with `mode=ro` and run the SELECT by id themselves, and
the two writers write the file directly (WAL, busy_timeout, commit per row).
Writers are paced, so both contenders face the same write load; the table shows
the write rate they reached.
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from micro_namedtuple_sqlite_persister import Engine
from micro_namedtuple_sqlite_persister.server.process import ServerProcess

from . import ops
from .common import Progress, Result, in_turn, register_group
from .processes import Job, Opener, WorkerPool, summarize
from .throughput import (
    SweepPoint,
    SweepTimings,
    render_sweep_table,
    sweep_chart_drawer,
    sweep_workload,
)

GROUP = "readers"
SERVER = "our server"
DIRECT = "direct read-only sqlite3"
CONTENDERS = (SERVER, DIRECT)
WRITERS = 2
WRITER_RATE_PER_S = 250.0
# Writer rows are numbered apart from the preloaded rows, by worker index.
WRITER_OFFSET = 50


class Size(NamedTuple):
    reader_counts: tuple[int, ...]
    preloaded_rows: int
    seconds: float
    warm_up: int
    repetitions: int


FULL = Size((1, 4, 16), 17_000, 2.0, 30, 5)
QUICK = Size((1, 4), 1_000, 0.3, 3, 1)

NOTES = f"""
N reader processes each find rows by id (ids spread over the {FULL.preloaded_rows:,}
preloaded rows; {QUICK.preloaded_rows:,} with `--quick`) one at a time for
{FULL.seconds:g} s, while {WRITERS} writer processes each save {WRITER_RATE_PER_S:g}
rows a second. **{SERVER}**: every process is a client (`find`, `save`).
**{DIRECT}** (the baseline): readers open the file read-only and run
`SELECT ... WHERE id = ?`, building the same `MyModel` row; writers write the
file directly (WAL, busy_timeout, commit per row). Durability normal. Reads/s
counts all readers together; latencies are of one find; errors count readers'
and writers'. Each run starts from a fresh copy of the same preloaded file;
workers warm up before a start barrier.
"""


def make_template(path: Path, rows: int) -> None:
    """A WAL file with `rows` saved MyModel rows (ids 1..rows), checkpointed."""
    with Engine(str(path)) as engine:
        engine.ensure_table_created(ops.MyModel)
        engine.save_many([ops.make_row(0, index) for index in range(rows)])
        engine.commit()


@contextlib.contextmanager
def fresh_jobs(
    contender: str, template: Path, directory: Path, readers: int, size: Size
) -> Iterator[list[Job]]:
    """The writers' and readers' jobs on a copy of the template, served by contender."""
    path = directory / "run.db"
    shutil.copyfile(template, path)
    try:
        if contender == SERVER:
            with ServerProcess(path, synchronous="normal") as server:
                yield make_jobs(contender, server.address, readers, size)
        else:
            yield make_jobs(contender, str(path), readers, size)
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


def make_jobs(contender: str, target: str, readers: int, size: Size) -> list[Job]:
    """Paced writer jobs (role "writer"), then reader jobs, for `target`."""
    finder: Opener = ops.direct_finder
    saver: Opener = ops.direct_saver
    settings: tuple[str, ...] = ("normal",)
    if contender == SERVER:
        finder, saver, settings = ops.server_finder, ops.server_saver, ()
    writers = [
        Job(
            saver,
            (target, *settings, WRITER_OFFSET + index),
            size.seconds,
            size.warm_up,
            WRITER_RATE_PER_S,
            "writer",
        )
        for index in range(WRITERS)
    ]
    finders = [
        Job(finder, (target, index, size.preloaded_rows), size.seconds, size.warm_up)
        for index in range(readers)
    ]
    return writers + finders


def make_points(size: Size) -> list[tuple[int, SweepPoint]]:
    return [
        (count, SweepPoint(sweep_workload("", count, "readers"), DIRECT, CONTENDERS))
        for count in size.reader_counts
    ]


render_readers_table = functools.partial(
    render_sweep_table, side_label="Writers' rows/s"
)


@register_group(
    GROUP,
    "Readers: finds by id from many processes while 2 writers write",
    NOTES,
    item="read",
    render_table=render_readers_table,
    draw_charts=sweep_chart_drawer("read", "reader processes (plus 2 paced writers)"),
)
def run_readers(quick: bool, progress: Progress) -> list[Result]:
    """Every (repetition, reader count, contender), order alternating."""
    size = QUICK if quick else FULL
    timings = SweepTimings(GROUP)
    points = make_points(size)
    progress.reset(total=len(points) * len(CONTENDERS) * size.repetitions)
    with contextlib.ExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        template = directory / "template.db"
        make_template(template, size.preloaded_rows)
        pool = stack.enter_context(WorkerPool(max(size.reader_counts) + WRITERS))
        for repetition in range(size.repetitions):
            for readers, point in points:
                progress.set_description(
                    f"readers, {point.name}, {repetition + 1}/{size.repetitions}"
                )
                for contender in in_turn(CONTENDERS, repetition):
                    with fresh_jobs(
                        contender, template, directory, readers, size
                    ) as jobs:
                        outcomes = pool.run(jobs)
                    timings.add(
                        point.name,
                        contender,
                        summarize(outcomes, "main"),
                        summarize(outcomes, "writer"),
                    )
                    progress.update(1)
    return timings.results([point for _, point in points])
