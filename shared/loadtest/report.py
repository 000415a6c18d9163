"""After the run: check what is stored, and summarise latency and throughput."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any, NamedTuple

from micro_namedtuple_sqlite_persister.client import RemoteEngine

from .workload import MIX, TREE_LEVELS, WorkerResult, tree_node_names

# Column title, width, alignment.
COLUMNS = (
    ("operation", 12, "<"),
    ("count", 9, ">"),
    ("ops/s", 9, ">"),
    ("p50 ms", 9, ">"),
    ("p99 ms", 9, ">"),
    ("max ms", 9, ">"),
)


class MarkedRow(NamedTuple):
    """A MyModel row as the final check reads it back."""

    id: int
    name: str
    score: float | None


class MarkedNode(NamedTuple):
    """A BOM node as the final check reads it back."""

    id: int
    name: str


def check_saved_rows(
    engine: RemoteEngine, run_id: str, results: list[WorkerResult]
) -> list[str]:
    """What is wrong with the stored rows of this run: one line per problem.

    Every acknowledged MyModel row must be stored once, with the id and score of
    its last acknowledged save; every node of every acknowledged tree, once.
    """
    pattern = [f"{run_id}-%"]
    rows = engine.query(
        MarkedRow, "SELECT id, name, score FROM MyModel WHERE name LIKE ?", pattern
    ).fetchall()
    nodes = engine.query(
        MarkedNode, "SELECT id, name FROM BOM WHERE name LIKE ?", pattern
    ).fetchall()
    expected_rows = {
        name: row for result in results for name, row in result.rows.items()
    }
    expected_nodes: dict[str, int | None] = {}
    for result in results:
        for root_name, root_id in result.trees.items():
            expected_nodes.update(dict.fromkeys(tree_node_names(root_name)))
            expected_nodes[root_name] = root_id
    found_rows = [(row.name, (row.id, row.score)) for row in rows]
    found_nodes = [(node.name, node.id) for node in nodes]
    return compare_stored("MyModel", found_rows, expected_rows) + compare_stored(
        "BOM", found_nodes, expected_nodes
    )


def compare_stored(
    table: str, found: list[tuple[str, Any]], expected: dict[str, Any]
) -> list[str]:
    """Each expected name stored exactly once, with its value (None: any value)."""
    copies = Counter(name for name, _ in found)
    stored = dict(found)
    problems = []
    for name, value in expected.items():
        if copies[name] != 1:
            problems.append(
                f"{table} row {name!r} is stored {copies[name]} times, not once"
            )
        elif value is not None and stored[name] != value:
            problems.append(
                f"{table} row {name!r} is stored as {stored[name]}, "
                f"but the server acknowledged {value}"
            )
    unexpected = sorted(set(copies) - set(expected))
    if unexpected:
        problems.append(
            f"{table} holds {len(unexpected)} rows of this run that no worker "
            f"saw acknowledged, e.g. {unexpected[0]!r}"
        )
    return problems


def read_server_counts(log: str) -> dict[str, int]:
    """The counts in the server's last "stopped ..." log line; empty if none."""
    lines = [line for line in log.splitlines() if "stopped seconds=" in line]
    if not lines:
        return {}
    return {name: int(count) for name, count in re.findall(r"(\w+)=(\d+)\b", lines[-1])}


def format_summary(
    results: list[WorkerResult], seconds: float, server_counts: dict[str, int]
) -> str:
    """The table of operations, then what was checked and rows per commit."""
    rule = "-" * sum(width for _, width, _ in COLUMNS)
    lines = [format_row([title for title, _, _ in COLUMNS]), rule]
    everything: list[float] = []
    for operation in MIX:
        latencies = [x for result in results for x in result.latencies[operation]]
        everything += latencies
        lines.append(format_operation(operation, latencies, seconds))
    lines += [rule, format_operation("total", everything, seconds), ""]
    rows = sum(len(result.rows) for result in results)
    trees = sum(len(result.trees) for result in results)
    lines.append(
        f"workers: {len(results)}, run: {seconds:.1f} s, acknowledged: {rows} "
        f"MyModel, {trees} BOM trees of {2**TREE_LEVELS - 1} nodes"
    )
    lines.append(format_commits(results, server_counts))
    return "\n".join(lines)


def format_operation(operation: str, latencies: list[float], seconds: float) -> str:
    """One table line: count, rate and latency percentiles in milliseconds."""
    if not latencies:
        return format_row([operation, "0", "0", "-", "-", "-"])
    ordered = sorted(latencies)
    millis = [1000 * percentile(ordered, share) for share in (0.50, 0.99, 1.0)]
    rate = len(ordered) / seconds
    return format_row(
        [operation, str(len(ordered)), f"{rate:.0f}", *(f"{ms:.2f}" for ms in millis)]
    )


def format_row(cells: Sequence[str]) -> str:
    return "".join(
        f"{cell:{align}{width}}"
        for cell, (_, width, align) in zip(cells, COLUMNS, strict=True)
    )


def percentile(ordered: Sequence[float], share: float) -> float:
    """The nearest-rank percentile of an already sorted, non-empty sequence."""
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def format_commits(results: list[WorkerResult], server_counts: dict[str, int]) -> str:
    """Rows per commit, estimated from rows written and the server's commit count."""
    written = sum(result.rows_written for result in results)
    commits = server_counts.get("commits")
    if not commits:
        return (
            f"rows written: {written}; rows per commit: not known, as the server's "
            "final log line is not available (a server reached with --connect keeps "
            "its own log)"
        )
    return (
        f"rows per commit: {written / commits:.1f} ({written} rows written in "
        f"{server_counts.get('writes', 0)} write requests and {commits} commits)"
    )
