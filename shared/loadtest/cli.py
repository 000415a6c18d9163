"""The command line: options, the server's lifetime, and the exit code."""

from __future__ import annotations

import argparse
import contextlib
import secrets
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from micro_namedtuple_sqlite_persister.client import RemoteEngine, connect
from micro_namedtuple_sqlite_persister.errors import PersisterError
from micro_namedtuple_sqlite_persister.server.process import ServerProcess

from .report import check_saved_rows, format_summary, read_server_counts
from .runner import run_workers
from .workload import (
    REQUEST_TIMEOUT_S,
    LoadTestError,
    WorkerResult,
    prepare_database,
)

DEFAULT_SECONDS = 15.0
MAX_PROBLEMS_SHOWN = 10


@dataclass
class Report:
    """The printed summary and every problem the final check found."""

    summary: str
    problems: list[str]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the load test from the command line: exit code 0 if every check passed.

    Returns 1 when the run or its check failed (the reason goes to stderr or
    after the summary) and 130 on Ctrl-C, after stopping workers and server.
    """
    options = parse_args(argv)
    try:
        report = run_load_test(options, run_id=secrets.token_hex(4))
    except KeyboardInterrupt:
        print("loadtest: interrupted; workers and server stopped", file=sys.stderr)
        return 130
    except (LoadTestError, PersisterError, OSError) as exc:
        print(f"loadtest: {exc}", file=sys.stderr)
        return 1
    print(report.summary)
    if report.problems:
        print(f"\nFAILED: {len(report.problems)} problem(s):")
        print("\n".join(report.problems[:MAX_PROBLEMS_SHOWN]))
        return 1
    print("check: OK, every acknowledged row is stored once, with its last value")
    return 0


def run_load_test(options: argparse.Namespace, run_id: str) -> Report:
    """Start (or reach) the server, run the workers, check the rows, stop.

    `run_id` starts every name saved, so runs sharing a database stay apart.
    Raises LoadTestError, PersisterError (e.g. ServerTimeoutError) or OSError.
    """
    with contextlib.ExitStack() as stack:
        server = start_server(options, stack)
        address = server.address if server is not None else options.connect
        engine = stack.enter_context(connect(address, timeout=REQUEST_TIMEOUT_S))
        prepare_database(engine)
        results, seconds = run_workers(options, address, run_id)
        problems = [result.error for result in results if result.error]
        problems += check_rows_if_possible(engine, server, run_id, results)
        server_counts = {}
        if server is not None:
            server.stop()
            server_counts = read_server_counts(server.read_log())
    return Report(format_summary(results, seconds, server_counts), problems)


def check_rows_if_possible(
    engine: RemoteEngine,
    server: ServerProcess | None,
    run_id: str,
    results: list[WorkerResult],
) -> list[str]:
    """The check's problems, or why it could not run (e.g. the server died)."""
    if server is not None and server.process and server.process.poll() is not None:
        code = server.process.returncode
        return [f"the server exited with code {code} during the run; rows unchecked"]
    try:
        return check_saved_rows(engine, run_id, results)
    except PersisterError as exc:
        return [f"the check could not read the rows back: {exc}"]


def start_server(
    options: argparse.Namespace, stack: contextlib.ExitStack
) -> ServerProcess | None:
    """A server on --db or a temporary file, stopped by `stack`; None for --connect."""
    if options.connect:
        return None
    db_path = options.db
    if db_path is None:
        directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="mnsp-"))
        db_path = Path(directory) / "loadtest.db"
    return stack.enter_context(ServerProcess(db_path))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The options; --seconds defaults to DEFAULT_SECONDS unless --rows is given."""
    parser = argparse.ArgumentParser(
        prog="python -m micro_namedtuple_sqlite_persister.loadtest",
        description="Run worker processes doing the notebook's mix of saves, finds, "
        "joined queries and deep saves through one server, check that every "
        "acknowledged row is stored exactly once, and print latency per operation.",
    )
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=4,
        metavar="N",
        help="worker processes (default: 4)",
    )
    server = parser.add_mutually_exclusive_group()
    server.add_argument(
        "--db",
        type=Path,
        metavar="PATH",
        help="database file for the server this run starts (default: a temporary "
        "one, deleted afterwards)",
    )
    server.add_argument(
        "--connect",
        metavar="ADDRESS",
        help="use the server already running at ADDRESS (tcp://HOST:PORT or "
        "ipc://PATH) instead of starting one; rows per commit is then not reported",
    )
    limit = parser.add_mutually_exclusive_group()
    limit.add_argument(
        "--seconds",
        type=positive_float,
        metavar="S",
        help=f"each worker runs for S seconds (default: {DEFAULT_SECONDS:.0f})",
    )
    limit.add_argument(
        "--rows",
        type=positive_int,
        metavar="R",
        help="instead of a time, run until the workers have inserted R MyModel rows",
    )
    options = parser.parse_args(argv)
    if options.rows is None and options.seconds is None:
        options.seconds = DEFAULT_SECONDS
    return options


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value
