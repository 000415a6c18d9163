"""`python -m benchmarks [--quick] [--out DIR]`: run every group, write and print."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

# Importing a group module registers it; add new groups here.
from . import inprocess  # noqa: F401
from .common import GROUPS, Machine, Result, write_outputs

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
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run every registered group, write the outputs, print the report."""
    args = parse_args(argv)
    given = sys.argv[1:] if argv is None else list(argv)
    command = shlex.join(["python", "-m", "benchmarks", *given])
    results: list[Result] = []
    with tqdm(unit="workload", file=sys.stderr, dynamic_ncols=True) as progress:
        for group in GROUPS:
            results += group.run(args.quick, progress)
    report = write_outputs(results, GROUPS, Machine.current(), command, args.out)
    print(report)
    print(f"Written to {args.out}/: results.md, results.json, charts (*.png)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
