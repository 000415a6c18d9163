"""Models and worker entry points for the robustness tests.

They live in an importable module (`robustness.models`, with `tests/` on
sys.path, which spawn-started children inherit) so that worker processes can
unpickle the functions they run. A worker records each save whose reply it
received in its own acknowledgement file, one flushed line per save, so the
parent knows what was acknowledged even when it kills the worker or the server.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, NamedTuple

from micro_namedtuple_sqlite_persister.client import connect

WORKER_TIMEOUT_S = 30.0
# A query that only burns time on a reader: about 0.3 s per million steps here.
SLOW_COUNT_SQL = (
    "WITH RECURSIVE step(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM step "
    "WHERE n < ?) SELECT 1, count(*) FROM step"
)
MAX_SAVES_PER_WORKER = 5000  # every worker loop is bounded in requests too
BATCH_ROWS = 50


class Marker(NamedTuple):
    """A row whose name says who saved it and which save it was."""

    id: int | None
    name: str
    worker: int


class Measure(NamedTuple):
    """A row with a NOT NULL float, for values SQLite cannot hold."""

    id: int | None
    value: float
    amount: int


class Span(NamedTuple):
    """The shape of `SELECT ?, count(*)`: what a slow counting query returns."""

    id: int | None
    total: int


def read_acknowledged(path: Path) -> list[str]:
    """The names a worker recorded as acknowledged, in order."""
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return [line.split(" ", 1)[0] for line in lines if line.endswith("ok")]


def wait_for_acks(
    paths: list[Path], counts: list[int], workers: list[Any], timeout_s: float = 30.0
) -> None:
    """Wait until worker i has recorded counts[i] acknowledgements.

    Fails at once if a worker process ended early, and after `timeout_s`.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        seen = [len(read_acknowledged(path)) for path in paths]
        if all(have >= want for have, want in zip(seen, counts, strict=True)):
            return
        ended = [worker.exitcode for worker in workers if worker.exitcode is not None]
        assert not ended, f"a worker ended early with exit codes {ended}"
        time.sleep(0.05)
    raise AssertionError(f"acknowledged {seen}, wanted {counts} in {timeout_s} s")


def save_markers(address: str, worker: int, ack_path: str, stop: Any) -> None:
    """Save Marker rows one by one until `stop` is set; record each acknowledged.

    Any error ends the process with a traceback and exit code 1.
    """
    engine = connect(address, timeout=WORKER_TIMEOUT_S)
    with open(ack_path, "a") as acks:
        for index in range(MAX_SAVES_PER_WORKER):
            if stop.is_set():
                return
            name = f"w{worker}-{index}"
            engine.save(Marker(None, name, worker))
            acks.write(f"{name} ok\n")
            acks.flush()


def save_markers_until_refused(
    address: str, worker: int, ack_path: str, timeout_s: float
) -> None:
    """As save_markers, until a save fails (the server stopped); exit code 0."""
    engine = connect(address, timeout=timeout_s)
    with open(ack_path, "a") as acks:
        for index in range(MAX_SAVES_PER_WORKER):
            name = f"w{worker}-{index}"
            try:
                engine.save(Marker(None, name, worker))
            except TimeoutError:
                return
            acks.write(f"{name} ok\n")
            acks.flush()


def save_marker_batches(address: str, worker: int, ack_path: str) -> None:
    """Save batches of BATCH_ROWS markers with save_many, until killed."""
    engine = connect(address, timeout=WORKER_TIMEOUT_S)
    with open(ack_path, "a") as acks:
        for batch in range(MAX_SAVES_PER_WORKER):
            name = f"w{worker}-b{batch}"
            rows = [Marker(None, f"{name}-{i}", worker) for i in range(BATCH_ROWS)]
            engine.save_many(rows)
            acks.write(f"{name} ok\n")
            acks.flush()


def hold_transaction(address: str, ack_path: str) -> None:
    """Save two markers inside transaction(), report them, then hang until killed."""
    engine = connect(address, timeout=WORKER_TIMEOUT_S)
    with engine.transaction(), open(ack_path, "a") as acks:
        for name in ("held-1", "held-2"):
            engine.save(Marker(None, name, -1))
            acks.write(f"{name} ok\n")
            acks.flush()
        time.sleep(3600)
