"""`python -m benchmarks [--quick] [--out DIR] [--only GROUP]`: run, write, print."""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

# Importing a group module registers it, in this order; add new groups here.
from . import inprocess, transport, writers, readers, bulk  # noqa: F401  # isort: skip
from .common import GROUPS, Group, Machine, Result, RunConditions, write_outputs

DEFAULT_OUT = Path("benchmarks") / "results"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Time this library against the alternatives and write "
        "results.md, results.json and PNG charts.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fewer rows and repetitions: proves the harness works, in seconds",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        metavar="DIR",
        help=f"where to write the results (default: {DEFAULT_OUT}/)",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=[group.name for group in GROUPS],
        metavar="GROUP",
        help="run only this group (repeatable; default: all of "
        f"{', '.join(group.name for group in GROUPS)})",
    )
    return parser.parse_args(argv)


def interrupt_on_sigterm() -> None:
    """Treat SIGTERM as Ctrl-C, so every child process is stopped on the way out."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def main(argv: Sequence[str] | None = None) -> int:
    """Run every registered group, write the outputs, print the report."""
    args = parse_args(argv)
    interrupt_on_sigterm()
    given = sys.argv[1:] if argv is None else list(argv)
    command = shlex.join(["python", "-m", "benchmarks", *given])
    groups: list[Group] = [g for g in GROUPS if not args.only or g.name in args.only]
    results: list[Result] = []
    conditions = RunConditions.begin()
    with tqdm(unit="run", file=sys.stderr, dynamic_ncols=True) as progress:
        for group in groups:
            results += group.run(args.quick, progress)
    conditions.finish()
    machine = Machine.current()
    report = write_outputs(results, groups, machine, command, args.out, conditions)
    print(report)
    if conditions.is_code_changed:
        print("Warning: the library's source changed during the run.", file=sys.stderr)
    print(f"Written to {args.out}/: results.md, results.json, charts (*.png)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
