"""The load test command, run as a user runs it: a subprocess with small settings."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from micro_namedtuple_sqlite_persister.loadtest.workload import MIX
from micro_namedtuple_sqlite_persister.server.process import ServerProcess

LOADTEST = [sys.executable, "-m", "micro_namedtuple_sqlite_persister.loadtest"]


def run_loadtest(*options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LOADTEST, *options], capture_output=True, text=True, timeout=100
    )


def operation_counts(summary: str) -> dict[str, int]:
    """{operation: count} from the lines of the summary table."""
    counts = {}
    for line in summary.splitlines():
        words = line.split()
        if len(words) == 6 and words[0] in MIX:
            counts[words[0]] = int(words[1])
    return counts


@pytest.mark.timeout(120)
def test_loadtest_with_its_own_server_passes_and_lists_every_operation() -> None:
    result = run_loadtest("--workers", "2", "--seconds", "3")

    assert result.returncode == 0, result.stdout + result.stderr
    counts = operation_counts(result.stdout)
    assert set(counts) == set(MIX)
    assert all(count > 0 for count in counts.values()), counts
    assert "rows per commit: " in result.stdout
    assert "check: OK" in result.stdout


@pytest.mark.timeout(120)
def test_loadtest_against_a_running_server_passes_and_leaves_it_running(
    tmp_path: Path,
) -> None:
    with ServerProcess(tmp_path / "shared.db") as server:
        result = run_loadtest(
            "--workers", "2", "--seconds", "3", "--connect", server.address
        )

        assert result.returncode == 0, result.stdout + result.stderr
        assert set(operation_counts(result.stdout)) == set(MIX)
        assert "check: OK" in result.stdout
        assert server.process is not None and server.process.poll() is None


@pytest.mark.timeout(120)
def test_loadtest_with_rows_inserts_exactly_that_many_rows_into_db(
    tmp_path: Path,
) -> None:
    db_path = tmp_path / "kept.db"

    result = run_loadtest("--workers", "2", "--rows", "301", "--db", str(db_path))

    assert result.returncode == 0, result.stdout + result.stderr
    assert operation_counts(result.stdout)["insert"] == 301
    with sqlite3.connect(db_path) as connection:
        (stored,) = connection.execute("SELECT count(*) FROM MyModel").fetchone()
    assert stored == 301
