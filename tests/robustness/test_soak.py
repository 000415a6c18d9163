"""A bounded soak: 16 client processes run the load test's mix for a minute.

Nothing may fail, every acknowledged row must be stored once with its last
value, and the server's memory at the end must stay within 20% of its level
after the first 10 seconds. The figures are printed to the terminal.
"""

from __future__ import annotations

import argparse
import secrets
import threading
import time
from typing import Any

import psutil
import pytest
from micro_namedtuple_sqlite_persister.loadtest.report import (
    check_saved_rows,
    format_summary,
    percentile,
    read_server_counts,
)
from micro_namedtuple_sqlite_persister.loadtest.runner import run_workers
from micro_namedtuple_sqlite_persister.loadtest.workload import (
    REQUEST_TIMEOUT_S,
    WorkerResult,
    prepare_database,
)

from .conftest import StartServer

SOAK_WORKERS = 16
SOAK_SECONDS = 60.0
WARM_UP_S = 10.0
MAX_MEMORY_GROWTH = 0.20
SAMPLE_INTERVAL_S = 0.5


class MemorySampler(threading.Thread):
    """Samples a process's resident memory until stopped: [(monotonic s, bytes)]."""

    def __init__(self, pid: int) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.process = psutil.Process(pid)
        self.samples: list[tuple[float, int]] = []
        self._stop_requested = threading.Event()

    def run(self) -> None:
        while not self._stop_requested.wait(SAMPLE_INTERVAL_S):
            self.samples.append((time.monotonic(), self.process.memory_info().rss))

    def stop(self) -> None:
        self._stop_requested.set()
        self.join()

    def at(self, moment: float) -> int:
        """The sample taken nearest to `moment`."""
        return min(self.samples, key=lambda sample: abs(sample[0] - moment))[1]


def overall_figures(results: list[WorkerResult], seconds: float) -> tuple[float, float]:
    """(operations per second, p99 latency in ms) over every operation."""
    latencies = sorted(
        latency
        for result in results
        for series in result.latencies.values()
        for latency in series
    )
    return len(latencies) / seconds, 1000 * percentile(latencies, 0.99)


@pytest.mark.timeout(170)
def test_sixteen_clients_for_a_minute_lose_nothing_and_memory_stays_flat(
    start_server: StartServer, clients: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    server = start_server()
    engine = clients(timeout=REQUEST_TIMEOUT_S)
    prepare_database(engine)
    run_id = secrets.token_hex(4)
    options = argparse.Namespace(workers=SOAK_WORKERS, rows=None, seconds=SOAK_SECONDS)
    sampler = MemorySampler(server.pid)
    sampler.start()

    results, seconds = run_workers(options, server.address, run_id)
    finished = time.monotonic()
    sampler.stop()

    problems = [result.error for result in results if result.error]
    problems += check_saved_rows(engine, run_id, results)
    assert server.stop() == 0
    started = finished - seconds
    warm = sampler.at(started + WARM_UP_S)
    end = sampler.at(finished)
    ops_per_s, p99_ms = overall_figures(results, seconds)
    summary = format_summary(results, seconds, read_server_counts(server.read_log()))
    with capsys.disabled():
        print(f"\n\nsoak: {SOAK_WORKERS} client processes, {seconds:.1f} s")
        print(summary)
        print(
            f"soak figures: {ops_per_s:.0f} ops/s, p99 {p99_ms:.1f} ms, server RSS "
            f"{warm / 2**20:.1f} MiB after {WARM_UP_S:.0f} s, {end / 2**20:.1f} MiB "
            f"at the end ({(end - warm) / warm:+.1%})"
        )
    assert problems == []
    assert end <= warm * (1 + MAX_MEMORY_GROWTH)
