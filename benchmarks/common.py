"""What every workload group shares: the registry, timing, medians, ratios, outputs.

A group is a function `run(quick, progress) -> list[Result]` registered with
`@register_group(...)`. It times its contenders, one repetition at a time, and
hands back one `Result` per (workload, contender) holding the raw seconds of
every repetition and the ratio to the baseline taken within each repetition.
This module turns those records into the Markdown table, the JSON file and the
charts, so a new group only has to measure.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import os
import platform
import sqlite3
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol, TypeVar

import psutil

T = TypeVar("T")


class Progress(Protocol):
    """The part of a tqdm bar a group uses; `__main__` passes a real tqdm."""

    def reset(self, total: float | None = None) -> None: ...
    def set_description(
        self, desc: str | None = None, refresh: bool = True
    ) -> None: ...
    def update(self, n: float | None = 1) -> bool | None: ...


@dataclass
class Result:
    """One contender on one workload: its seconds and ratios, one per repetition.

    `ratios[i]` is `seconds[i]` divided by the baseline's seconds in the same
    repetition i, so slow and fast moments of the machine cancel out. The
    baseline's own ratios are all 1.0. `rows` is how many rows one timed run
    handles, for the per-row figure.
    """

    group: str
    workload: str
    contender: str
    baseline: str
    rows: int
    seconds: list[float]
    ratios: list[float]
    target_ratio: float | None = None
    # Other per-repetition figures a group reports (latencies, error counts),
    # each key naming its unit, e.g. "p99_latency_ms"; written to results.json.
    extra: dict[str, list[float]] = field(default_factory=dict)

    @property
    def is_baseline(self) -> bool:
        return self.contender == self.baseline

    @property
    def median_seconds(self) -> float:
        return statistics.median(self.seconds)

    @property
    def median_ratio(self) -> float:
        return statistics.median(self.ratios)

    @property
    def per_row_us(self) -> float:
        return self.median_seconds / self.rows * 1e6

    @property
    def is_target_met(self) -> bool | None:
        if self.target_ratio is None:
            return None
        return self.median_ratio <= self.target_ratio


class UnfairComparisonError(Exception):
    """Contenders did different work (other answers, schema or settings)."""


GroupRun = Callable[[bool, Progress], list[Result]]


class Group(NamedTuple):
    """A registered workload group; `notes` is Markdown printed above its table."""

    name: str
    title: str
    notes: str
    run: GroupRun


# Every group module appends itself here on import (see `register_group`);
# `__main__` runs them in this order.
GROUPS: list[Group] = []


def register_group(name: str, title: str, notes: str) -> Callable[[GroupRun], GroupRun]:
    """Decorator adding a group function to GROUPS; ValueError for a reused name."""

    def register(run: GroupRun) -> GroupRun:
        if any(group.name == name for group in GROUPS):
            raise ValueError(f"benchmark group {name!r} is registered twice.")
        GROUPS.append(Group(name, title, notes, run))
        return run

    return register


# -- measuring ------------------------------------------------------------------


def time_call(call: Callable[[], T]) -> tuple[float, T]:
    """Seconds `call()` takes on a wall clock, and what it returned.

    Garbage from earlier runs is collected first, outside the clock, so one
    contender does not pay for the other's objects; the collector stays on
    while the clock runs, as it would in the user's program.
    """
    gc.collect()
    start = time.perf_counter()
    value = call()
    return time.perf_counter() - start, value


def in_turn(contenders: Sequence[T], repetition: int) -> list[T]:
    """The contenders in the order they run in `repetition`: reversed every other."""
    return list(contenders) if repetition % 2 == 0 else list(reversed(contenders))


class Workload(NamedTuple):
    """What a group knows about one workload before timing it."""

    name: str
    rows: int
    baseline: str
    contenders: tuple[str, ...]
    target_ratio: float | None = None
    target_contender: str | None = None


class Timings:
    """Seconds collected per (workload, contender), one entry per repetition."""

    def __init__(self, group: str) -> None:
        self.group = group
        self._seconds: dict[tuple[str, str], list[float]] = {}

    def add(self, workload: str, contender: str, seconds: float) -> None:
        self._seconds.setdefault((workload, contender), []).append(seconds)

    def results(self, workloads: Sequence[Workload]) -> list[Result]:
        """A Result per contender of each workload, ratios taken per repetition."""
        results = []
        for workload in workloads:
            baseline = self._seconds[(workload.name, workload.baseline)]
            for contender in workload.contenders:
                seconds = self._seconds[(workload.name, contender)]
                ratios = [
                    mine / base for mine, base in zip(seconds, baseline, strict=True)
                ]
                target = None
                if contender == workload.target_contender:
                    target = workload.target_ratio
                results.append(
                    Result(
                        self.group,
                        workload.name,
                        contender,
                        workload.baseline,
                        workload.rows,
                        seconds,
                        ratios,
                        target,
                    )
                )
        return results


# -- describing the run -----------------------------------------------------------


@dataclass
class Machine:
    """Where the figures were measured; printed with every table and chart."""

    cpu: str
    logical_cores: int
    physical_cores: int
    memory_gib: float
    system: str
    python: str
    sqlite: str

    @classmethod
    def current(cls) -> Machine:
        """This machine, as far as the standard library and psutil can tell."""
        return cls(
            cpu=_cpu_model(),
            logical_cores=os.cpu_count() or 0,
            physical_cores=psutil.cpu_count(logical=False) or 0,
            memory_gib=round(psutil.virtual_memory().total / 2**30, 1),
            system=platform.platform(),
            python=platform.python_version(),
            sqlite=sqlite3.sqlite_version,
        )

    def describe(self) -> str:
        return (
            f"{self.cpu}, {self.logical_cores} logical cores "
            f"({self.physical_cores} physical), {self.memory_gib} GiB RAM; "
            f"{self.system}; Python {self.python}, SQLite {self.sqlite}"
        )

    def short(self) -> str:
        return f"{self.cpu}, {self.logical_cores} cores"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


# -- formatting -------------------------------------------------------------------


def format_seconds(seconds: float) -> str:
    """A duration with a unit that keeps 3-4 significant digits: s, ms or µs."""
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.1f} µs"


def format_target(result: Result) -> str:
    if result.target_ratio is None:
        return ""
    verdict = "met" if result.is_target_met else "missed"
    return f"≤ {result.target_ratio:.1f}× ({verdict})"


TABLE_HEADER = (
    "Workload",
    "Contender",
    "Rows",
    "Median time",
    "Per row (µs)",
    "Ratio to baseline",
    "Target",
)


def render_table(results: Sequence[Result]) -> str:
    """A Markdown table, one line per result, in the order given."""
    lines = [
        "| " + " | ".join(TABLE_HEADER) + " |",
        "|" + "|".join(["---", "---", "---:", "---:", "---:", "---:", "---"]) + "|",
    ]
    for result in results:
        ratio = f"{result.median_ratio:.2f}×"
        if result.is_baseline:
            ratio += " (baseline)"
        cells = (
            result.workload,
            result.contender,
            f"{result.rows:,}",
            format_seconds(result.median_seconds),
            f"{result.per_row_us:.2f}",
            ratio,
            format_target(result),
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_report(
    results: Sequence[Result], machine: Machine, command: str, groups: Sequence[Group]
) -> str:
    """The whole results.md: how it was run, then one section and table per group."""
    parts = [
        "# Benchmark results",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine.describe()}  ",
        f"Finished: {dt.datetime.now().isoformat(timespec='seconds')}",
        "",
        "Times are medians over repetitions; each ratio is the contender's time "
        "divided by the baseline's time in the same repetition, and the median of "
        "those ratios is shown (so it need not equal the ratio of the medians).",
    ]
    for group in groups:
        mine = [result for result in results if result.group == group.name]
        if not mine:
            continue
        repetitions = max(len(result.seconds) for result in mine)
        parts += ["", f"## {group.title}", "", group.notes.strip(), ""]
        parts += [f"Timed repetitions: {repetitions}.", "", render_table(mine)]
    return "\n".join(parts) + "\n"


# -- writing files ----------------------------------------------------------------


def write_json(
    results: Sequence[Result], machine: Machine, command: str, path: Path
) -> None:
    """Every repetition's raw seconds and ratios, plus the medians shown in tables."""
    records = []
    for result in results:
        record = asdict(result)
        record["median_seconds"] = result.median_seconds
        record["median_ratio"] = result.median_ratio
        record["per_row_us"] = result.per_row_us
        record["is_target_met"] = result.is_target_met
        records.append(record)
    document = {
        "command": command,
        "machine": asdict(machine),
        "finished": dt.datetime.now().isoformat(timespec="seconds"),
        "units": {"seconds": "s", "per_row_us": "µs", "ratios": "contender/baseline"},
        "results": records,
    }
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def draw_comparison_chart(
    results: Sequence[Result], title: str, machine: Machine, path: Path
) -> None:
    """Two panels: per-row time of every contender, and ratios to the baseline.

    One bar group per workload; targets, where a result has one, are drawn as
    red ticks on the ratio panel.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = list(dict.fromkeys(result.workload for result in results))
    contenders = dict.fromkeys(result.contender for result in results)
    colors = {contender: f"C{index}" for index, contender in enumerate(contenders)}
    figure, (left, right) = plt.subplots(
        1, 2, figsize=(13, 0.75 * len(workloads) + 2.5), sharey=True
    )
    _draw_bars(left, results, workloads, colors, "per_row_us", "{:.2f}")
    left.set_xlabel("median time per row (µs)")
    compared = [result for result in results if not result.is_baseline]
    _draw_bars(right, compared, workloads, colors, "median_ratio", "{:.2f}×")
    right.axvline(1.0, color="black", linewidth=0.8)
    _draw_targets(right, compared, workloads)
    baselines = ", ".join(sorted({result.baseline for result in results}))
    right.set_xlabel(f"median ratio to the baseline, {baselines} (×; lower is better)")
    left.invert_yaxis()
    handles, labels = left.get_legend_handles_labels()
    target_handles, target_labels = right.get_legend_handles_labels()
    is_target = [label == "target" for label in target_labels]
    handles += [h for h, keep in zip(target_handles, is_target, strict=True) if keep]
    labels += [
        label for label, keep in zip(target_labels, is_target, strict=True) if keep
    ]
    figure.legend(handles, labels, loc="lower center", ncols=len(labels), frameon=False)
    repetitions = max(len(result.seconds) for result in results)
    figure.suptitle(f"{title}\n{machine.short()}; medians of {repetitions} repetitions")
    figure.tight_layout(rect=(0, 0.05, 1, 1))
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _draw_bars(
    axes: Any,
    results: Sequence[Result],
    workloads: list[str],
    colors: dict[str, str],
    attribute: str,
    label_format: str,
) -> None:
    """Horizontal bars, one slot per contender present in `results`, values shown."""
    present = list(dict.fromkeys(result.contender for result in results))
    height = 0.8 / len(present)
    for slot, contender in enumerate(present):
        mine = [result for result in results if result.contender == contender]
        values = [getattr(result, attribute) for result in mine]
        positions = [workloads.index(r.workload) + slot * height - 0.4 for r in mine]
        bars = axes.barh(
            positions,
            values,
            height=height,
            align="edge",
            label=contender,
            color=colors[contender],
        )
        axes.bar_label(
            bars,
            [label_format.format(value) for value in values],
            padding=2,
            fontsize=7,
        )
    axes.set_yticks(range(len(workloads)), workloads)
    axes.grid(axis="x", alpha=0.3)
    axes.margins(x=0.12)


def _draw_targets(axes: Any, results: Sequence[Result], workloads: list[str]) -> None:
    is_labelled = False
    for result in results:
        if result.target_ratio is None:
            continue
        row = workloads.index(result.workload)
        axes.vlines(
            result.target_ratio,
            row - 0.45,
            row + 0.45,
            colors="red",
            linewidth=2,
            label=None if is_labelled else "target",
        )
        is_labelled = True


def write_outputs(
    results: Sequence[Result],
    groups: Sequence[Group],
    machine: Machine,
    command: str,
    out_dir: Path,
) -> str:
    """Write results.md, results.json and one chart per group; return the report."""
    out_dir.mkdir(parents=True, exist_ok=True)
    report = render_report(results, machine, command, groups)
    (out_dir / "results.md").write_text(report, encoding="utf-8")
    write_json(results, machine, command, out_dir / "results.json")
    for group in groups:
        mine = [result for result in results if result.group == group.name]
        if mine:
            chart = out_dir / f"{group.name}.png"
            draw_comparison_chart(mine, group.title, machine, chart)
    return report
