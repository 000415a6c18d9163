"""Worker processes: started before the clock, released together, always stopped."""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import queue
import threading
import time
from typing import Any

from .workload import (
    REQUEST_TIMEOUT_S,
    START_TIMEOUT_S,
    LoadTestError,
    WorkerPlan,
    WorkerResult,
    run_worker,
)

STOP_GRACE_S = 2.0
PROGRESS_INTERVAL_S = 0.25


def run_workers(
    options: argparse.Namespace, address: str, run_id: str
) -> tuple[list[WorkerResult], float]:
    """Run the workers against `address`; (results by worker, seconds of running).

    Raises LoadTestError if a worker cannot start, dies, or does not stop in
    time. Whatever happens, including Ctrl-C, no worker outlives this call.
    """
    # spawn: the workers start clean, without the parent's ZeroMQ threads.
    context = multiprocessing.get_context("spawn")
    counters = context.RawArray("q", 2 * options.workers)
    barrier = context.Barrier(options.workers + 1)
    stop = context.Event()
    results = context.Queue()
    processes = [
        context.Process(
            target=run_worker,
            args=(plan, counters, barrier, stop, results),
            name=f"loadtest-worker-{plan.index}",
            daemon=True,
        )
        for plan in make_plans(options, address, run_id)
    ]
    for process in processes:
        process.start()
    try:
        wait_for_start(barrier, results, len(processes))
        collected, seconds = watch_workers(processes, counters, results, options)
    finally:
        stop.set()
        barrier.abort()
        stop_processes(processes, results)
    return sorted(collected, key=lambda result: result.index), seconds


def make_plans(
    options: argparse.Namespace, address: str, run_id: str
) -> list[WorkerPlan]:
    """One plan per worker; a --rows total is shared out evenly."""
    count, plans = options.workers, []
    for index in range(count):
        quota = None
        if options.rows is not None:
            quota = options.rows // count + (index < options.rows % count)
        marker = f"{run_id}-w{index}"
        plans.append(WorkerPlan(index, address, marker, options.seconds, quota))
    return plans


def wait_for_start(barrier: Any, results: Any, count: int) -> None:
    """Wait until all `count` workers have connected; LoadTestError if not."""
    try:
        barrier.wait(START_TIMEOUT_S)
    except threading.BrokenBarrierError:
        for _ in range(count):  # find the worker that called the start off
            try:
                result = results.get(timeout=REQUEST_TIMEOUT_S)
            except queue.Empty:
                break
            if result.error:
                raise LoadTestError(result.error) from None
        raise LoadTestError(
            f"the workers did not all connect within {START_TIMEOUT_S:.0f} s"
        ) from None


def watch_workers(
    processes: list[Any], counters: Any, results: Any, options: argparse.Namespace
) -> tuple[list[WorkerResult], float]:
    """Show progress until every worker has reported; (results, seconds)."""
    started = time.perf_counter()
    # A worker stops at its deadline; its last request may take a timeout more.
    give_up_at = started + (options.seconds or float("inf")) + 2 * REQUEST_TIMEOUT_S
    collected: list[WorkerResult] = []
    with ProgressBars(options) as bars:
        while len(collected) < len(processes):
            try:
                collected.append(results.get(timeout=PROGRESS_INTERVAL_S))
            except queue.Empty:
                check_processes(processes)
            bars.show(time.perf_counter() - started, counters)
            if time.perf_counter() > give_up_at:
                raise LoadTestError("the workers did not stop in time")
    return collected, max(result.seconds for result in collected)


def check_processes(processes: list[Any]) -> None:
    """LoadTestError if a worker is gone without having reported."""
    for process in processes:
        if process.exitcode not in (None, 0):
            raise LoadTestError(
                f"{process.name} died with exit code {process.exitcode} "
                "before reporting"
            )
    if all(process.exitcode == 0 for process in processes):
        raise LoadTestError("every worker exited, but some results never arrived")


def stop_processes(processes: list[Any], results: Any) -> None:
    """Wait for the workers; terminate, then kill, any that does not stop.

    Unread results are drained meanwhile: a worker cannot exit while its result
    is stuck in a full queue pipe.
    """
    deadline = time.monotonic() + STOP_GRACE_S
    while any(p.is_alive() for p in processes) and time.monotonic() < deadline:
        with contextlib.suppress(queue.Empty):
            results.get(timeout=0.05)
    for process in processes:
        if process.is_alive():
            process.terminate()
            process.join(1.0)
        if process.is_alive():
            process.kill()
            process.join()


class ProgressBars:
    """Two tqdm bars on stderr, fed from the workers' counters by the parent."""

    def __init__(self, options: argparse.Namespace) -> None:
        from tqdm import tqdm

        self.rows_goal: int | None = options.rows
        self.seconds_goal: float = options.seconds or 0.0
        if self.rows_goal is not None:
            self.goal = tqdm(total=self.rows_goal, desc="rows inserted", unit="row")
        else:
            self.goal = tqdm(
                total=self.seconds_goal,
                desc="time",
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s",
            )
        self.operations = tqdm(desc="operations", unit="op")

    def show(self, elapsed_s: float, counters: Any) -> None:
        if self.rows_goal is not None:
            self.goal.update(sum(counters[1::2]) - self.goal.n)
        else:
            self.goal.update(min(elapsed_s, self.seconds_goal) - self.goal.n)
        self.operations.update(sum(counters[0::2]) - self.operations.n)

    def __enter__(self) -> ProgressBars:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.goal.close()
        self.operations.close()
