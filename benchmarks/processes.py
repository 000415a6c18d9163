"""Worker processes for the multi-process groups: started once, given jobs, timed.

A `WorkerPool` starts its processes before any clock runs and keeps them for
the whole group. For each timed run the parent hands every taking part worker
a `Job`; the worker opens its contender (connection, client, socket), does the
warm-up operations, reports ready and waits on a shared start event. When all
are ready the parent sets the event (the start barrier), each worker runs its
operation until its own deadline, and sends back an `Outcome` with the
latency of every operation. Workers ignore Ctrl-C: the parent stops them in
`WorkerPool.close`, which always runs.

Processes come from a forkserver that preloads the modules the jobs use, so a
new process neither inherits the parent's threads and sockets nor pays for the
imports again.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import signal
import socket
import time
import traceback
from array import array
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event
from types import TracebackType
from typing import Any, NamedTuple

PRELOADED_MODULES = [
    "sqlite3",
    "zmq",
    "msgpack",
    "benchmarks.ops",
    "benchmarks.manager",
    "micro_namedtuple_sqlite_persister.client",
    "psycopg",  # skipped by the forkserver when it is not installed
]
READY_TIMEOUT_S = 60.0
GO_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 5.0

# One operation of a job: `operation(index)` saves row `index`, or finds one.
Operation = Callable[[int], object]
Opener = Callable[..., contextlib.AbstractContextManager[Operation]]


class WorkerFailedError(Exception):
    """A worker could not open its contender or run its job; carries its traceback."""


def context() -> BaseContext:
    """The forkserver context every benchmark process is started from."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOADED_MODULES)
    return ctx


def ignore_interrupts() -> None:
    """Leave Ctrl-C to the parent, which stops its children in order."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def free_tcp_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on at the moment of asking."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Job(NamedTuple):
    """What one worker does in one timed run.

    `opener(*args)` is a context manager yielding the operation; it must be a
    module-level function so it pickles by name. Operations 0 .. warm_up - 1
    run before the start barrier and are not timed. With `rate_per_s` the
    worker paces itself to that many operations a second instead of going flat
    out. `role` tells apart workers with different jobs in one run.
    """

    opener: Opener
    args: tuple[Any, ...]
    seconds: float
    warm_up: int
    rate_per_s: float | None = None
    role: str = "main"


class Outcome(NamedTuple):
    """What one worker did in the timed part of a run.

    `started` and `ended` are `time.monotonic()` readings, comparable between
    processes on Linux. `latencies` holds the seconds of every successful
    operation as an `array('d')` in bytes; failed operations are only counted,
    by message, in `errors`.
    """

    role: str
    operations: int
    errors: dict[str, int]
    started: float
    ended: float
    latencies: bytes


class Failure(NamedTuple):
    traceback: str


READY = "ready"


# -- inside a worker process --------------------------------------------------------


def serve_jobs(connection: Connection, go: Event) -> None:
    """A worker's main loop: run each job received until told to stop (None)."""
    ignore_interrupts()
    while True:
        job = connection.recv()
        if job is None:
            return
        try:
            outcome: Outcome | Failure = run_job(job, connection, go)
        except Exception:
            outcome = Failure(traceback.format_exc())
        connection.send(outcome)


def run_job(job: Job, connection: Connection, go: Event) -> Outcome:
    """Open, warm up, report ready, wait for the barrier, run timed, close."""
    with job.opener(*job.args) as operation:
        for index in range(job.warm_up):
            operation(index)
        connection.send(READY)
        if not go.wait(GO_TIMEOUT_S):
            raise TimeoutError(f"no start signal within {GO_TIMEOUT_S} s")
        return timed_run(operation, job)


def timed_run(operation: Operation, job: Job) -> Outcome:
    """Run `operation` on indexes from `job.warm_up` on until the deadline."""
    latencies = array("d")
    errors: Counter[str] = Counter()
    clock = time.perf_counter
    interval = 0.0 if job.rate_per_s is None else 1.0 / job.rate_per_s
    started = time.monotonic()
    begin = clock()
    deadline = begin + job.seconds
    index = job.warm_up
    done = 0
    while (before := clock()) < deadline:
        if interval and (wait := begin + done * interval - before) > 0:
            time.sleep(wait)
            before = clock()
        try:
            operation(index)
        except Exception as exc:  # counted, as a user's retry loop would see it
            errors[f"{type(exc).__name__}: {exc}"] += 1
        else:
            latencies.append(clock() - before)
        index += 1
        done += 1
    return Outcome(
        job.role,
        len(latencies),
        dict(errors),
        started,
        time.monotonic(),
        bytes(latencies),
    )


# -- in the parent ------------------------------------------------------------------


class WorkerPool:
    """`size` worker processes, started at once and kept until `close`."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._ctx = context()
        self._go = self._ctx.Event()
        self._processes: list[BaseProcess] = []
        self._connections: list[Connection] = []

    def start(self) -> WorkerPool:
        for index in range(self.size):
            parent_end, child_end = self._ctx.Pipe()
            process = self._ctx.Process(  # type: ignore[attr-defined]
                target=serve_jobs,
                args=(child_end, self._go),
                name=f"bench-worker-{index}",
                daemon=True,
            )
            process.start()
            child_end.close()
            self._processes.append(process)
            self._connections.append(parent_end)
        return self

    def run(self, jobs: Sequence[Job]) -> list[Outcome]:
        """Run one job per worker (the first len(jobs) workers) behind one barrier.

        Raises WorkerFailedError with the worker's traceback if any job fails;
        the other workers still finish their run first, so the pool stays usable.
        """
        if len(jobs) > self.size:
            raise ValueError(f"{len(jobs)} jobs for a pool of {self.size} workers.")
        connections = self._connections[: len(jobs)]
        for connection, job in zip(connections, jobs, strict=True):
            connection.send(job)
        failures = [
            self._receive(connection, READY_TIMEOUT_S) for connection in connections
        ]
        self._go.set()
        try:
            longest = max(job.seconds for job in jobs) + READY_TIMEOUT_S
            finals = [
                self._receive(connection, longest) if failure is None else failure
                for connection, failure in zip(connections, failures, strict=True)
            ]
        finally:
            self._go.clear()
        return _outcomes_or_raise(finals)

    def _receive(self, connection: Connection, timeout_s: float) -> Any:
        """The worker's next message; None for READY. Raises if it says nothing."""
        if not connection.poll(timeout_s):
            raise WorkerFailedError(
                f"a benchmark worker sent nothing for {timeout_s:g} s; it is stuck "
                "or died (see its output above)."
            )
        message = connection.recv()
        return None if message == READY else message

    def close(self) -> None:
        """Ask every worker to stop, then terminate and kill those that do not."""
        for connection in self._connections:
            with contextlib.suppress(OSError):
                connection.send(None)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for process in self._processes:
            process.join(max(0.0, deadline - time.monotonic()))
        for process in self._processes:
            stop_process(process)
        for connection in self._connections:
            connection.close()
        self._processes.clear()
        self._connections.clear()

    def __enter__(self) -> WorkerPool:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _outcomes_or_raise(finals: list[Any]) -> list[Outcome]:
    failures = [final for final in finals if isinstance(final, Failure)]
    if failures:
        raise WorkerFailedError(
            f"{len(failures)} of {len(finals)} benchmark workers failed; the "
            f"first one's traceback:\n{failures[0].traceback}"
        )
    return finals


def stop_process(process: BaseProcess) -> None:
    """Terminate a child still running after its chance to stop, then kill it."""
    if process.is_alive():
        process.terminate()
        process.join(STOP_TIMEOUT_S)
    if process.is_alive():
        process.kill()
        process.join()


@contextlib.contextmanager
def running_process(target: Callable[..., None], *args: Any) -> Iterator[BaseProcess]:
    """A child running `target(*args)` from the forkserver, stopped on leaving."""
    process = context().Process(target=target, args=args, daemon=True)  # type: ignore[attr-defined]
    process.start()
    try:
        yield process
    finally:
        stop_process(process)


# -- summarising --------------------------------------------------------------------


class Summary(NamedTuple):
    """Every worker of one role in one run, taken together."""

    operations: int
    seconds: float
    per_second: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors: Counter[str]


def summarize(outcomes: Sequence[Outcome], role: str = "main") -> Summary:
    """Aggregate throughput over the run's window and latency percentiles.

    The window runs from the first worker's start to the last one's end, so
    workers that start late or finish late count against the throughput.
    """
    mine = [outcome for outcome in outcomes if outcome.role == role]
    latencies = array("d")
    errors: Counter[str] = Counter()
    for outcome in mine:
        latencies.frombytes(outcome.latencies)
        errors.update(outcome.errors)
    window = max(o.ended for o in mine) - min(o.started for o in mine)
    ordered = sorted(latencies)
    operations = sum(outcome.operations for outcome in mine)
    return Summary(
        operations,
        window,
        operations / window if window > 0 else 0.0,
        percentile(ordered, 0.50) * 1e3,
        percentile(ordered, 0.99) * 1e3,
        (ordered[-1] if ordered else math.nan) * 1e3,
        errors,
    )


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of sorted values; NaN when there are none."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]
