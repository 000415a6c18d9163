"""`python -m benchmarks --quick` runs end to end and writes what it promises.

Only the outputs are checked, never the speed: timings belong to the benchmark
run itself, not to a test that must pass on any machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
EXPECTED_WORKLOADS = {
    "insert-save",
    "update-save",
    "find by id",
    "find_by (indexed name)",
    "select score > 95.7",
    "delete",
    "deep save",
    "deep find",
}


def table_rows(markdown: str) -> list[dict[str, str]]:
    """The rows of the first Markdown table in `markdown`, keyed by header."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    return [
        dict(zip(header, (cell.strip() for cell in line.strip("|").split("|"))))
        for line in lines[2:]
    ]


def test_quick_benchmark_writes_table_json_and_chart(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--out", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=90,
    )

    assert completed.returncode == 0, completed.stderr
    report = (tmp_path / "results.md").read_text(encoding="utf-8")
    rows = table_rows(report)
    assert {row["Workload"] for row in rows} == EXPECTED_WORKLOADS
    assert {"Engine", "sqlite3"} <= {row["Contender"] for row in rows}
    assert all(row["Median time"].split()[-1] in {"s", "ms", "µs"} for row in rows)
    assert "| Workload |" in completed.stdout
    document = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert all(len(result["seconds"]) >= 2 for result in document["results"])
    assert list(tmp_path.glob("*.png"))
