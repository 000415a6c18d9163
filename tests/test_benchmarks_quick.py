"""`python -m benchmarks --quick` runs end to end and writes what it promises.

Only the outputs are checked, never the speed: timings belong to the benchmark
run itself, not to a test that must pass on any machine. Every group must have
its section and a table in results.md, its records in results.json and its
charts.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
EXPECTED_GROUPS = ["inprocess", "transport", "writers", "readers", "bulk"]
EXPECTED_INPROCESS_WORKLOADS = {
    "insert-save",
    "update-save",
    "find by id",
    "find_by (indexed name)",
    "select score > 95.7",
    "delete",
    "deep save",
    "deep find",
}


def sections(markdown: str) -> dict[str, str]:
    """The text under each `## ` heading of `markdown`, keyed by heading."""
    found: dict[str, str] = {}
    title = None
    for line in markdown.splitlines():
        if line.startswith("## "):
            title = line[3:]
            found[title] = ""
        elif title is not None:
            found[title] += line + "\n"
    return found


def table_rows(markdown: str) -> list[dict[str, str]]:
    """The rows of the first Markdown table in `markdown`, keyed by header."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    return [
        dict(zip(header, (cell.strip() for cell in line.strip("|").split("|"))))
        for line in lines[2:]
    ]


def test_quick_benchmark_writes_every_group_table_json_and_charts(
    tmp_path: Path,
) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--out", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=110,
    )

    assert completed.returncode == 0, completed.stderr
    report = (tmp_path / "results.md").read_text(encoding="utf-8")
    document = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    titles = {group["name"]: group["title"] for group in document["groups"]}
    assert list(titles) == EXPECTED_GROUPS
    by_title = sections(report)
    for name in EXPECTED_GROUPS:
        assert titles[name] in by_title, f"no section for group {name}"
        assert table_rows(by_title[titles[name]]), f"empty table for group {name}"
    inprocess = table_rows(by_title[titles["inprocess"]])
    assert {row["Workload"] for row in inprocess} == EXPECTED_INPROCESS_WORKLOADS
    assert {"Engine", "sqlite3"} <= {row["Contender"] for row in inprocess}
    assert all(row["Median time"].split()[-1] in {"s", "ms", "µs"} for row in inprocess)
    writers = table_rows(by_title[titles["writers"]])
    assert {
        "our server",
        "direct SQLite (WAL)",
        "BaseManager + sqlite3",
        "pyzmq echo, no database",
    } <= {row["Contender"] for row in writers}
    assert all(float(row["Rows/s"].replace(",", "")) > 0 for row in writers)
    assert "| Workload |" in completed.stdout
    assert {r["group"] for r in document["results"]} == set(EXPECTED_GROUPS)
    assert all(len(result["seconds"]) >= 1 for result in document["results"])
    charts = {path.name for path in tmp_path.glob("*.png")}
    assert {"inprocess.png", "transport.png", "bulk.png", "readers.png"} <= charts
    assert {"writers-durability-normal.png", "writers-durability-full.png"} <= charts
