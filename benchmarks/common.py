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
import hashlib
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
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
    # A bound on the median p99 latency (extra["p99_latency_ms"]), in ms.
    latency_target_ms: float | None = None
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

    @property
    def is_latency_target_met(self) -> bool | None:
        if self.latency_target_ms is None:
            return None
        return self.median_extra("p99_latency_ms") <= self.latency_target_ms

    def median_extra(self, key: str) -> float:
        """The median over repetitions of one `extra` figure; KeyError if absent."""
        return statistics.median(self.extra[key])


class UnfairComparisonError(Exception):
    """Contenders did different work (other answers, schema or settings)."""


GroupRun = Callable[[bool, Progress], list[Result]]
TableRenderer = Callable[[Sequence[Result], str], str]
ChartDrawer = Callable[[Sequence[Result], str, "Machine", Path], None]


class Group(NamedTuple):
    """A registered workload group; `notes` is Markdown printed above its table.

    `item` names what one of a result's `rows` is ("row", "round trip"), for
    the table headers. A group whose figures are not times (throughput sweeps)
    brings its own `render_table` and `draw_charts`; the others get the
    comparison table and chart of this module.
    """

    name: str
    title: str
    notes: str
    run: GroupRun
    item: str = "row"
    render_table: TableRenderer | None = None
    draw_charts: ChartDrawer | None = None


# Every group module appends itself here on import (see `register_group`);
# `__main__` runs them in this order.
GROUPS: list[Group] = []


def register_group(
    name: str,
    title: str,
    notes: str,
    *,
    item: str = "row",
    render_table: TableRenderer | None = None,
    draw_charts: ChartDrawer | None = None,
) -> Callable[[GroupRun], GroupRun]:
    """Decorator adding a group function to GROUPS; ValueError for a reused name."""

    def register(run: GroupRun) -> GroupRun:
        if any(group.name == name for group in GROUPS):
            raise ValueError(f"benchmark group {name!r} is registered twice.")
        GROUPS.append(Group(name, title, notes, run, item, render_table, draw_charts))
        return run

    return register


# Facts a group learns only while running (a frame size, a contender skipped
# and why), by group name; printed under the group's notes in results.md.
RUN_NOTES: dict[str, list[str]] = {}


def add_run_note(group: str, text: str) -> None:
    """Record a note for `group`'s section and show it on stderr at once."""
    RUN_NOTES.setdefault(group, []).append(text)
    from tqdm import tqdm

    tqdm.write(f"[{group}] {text}", file=sys.stderr)


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


@dataclass
class RunConditions:
    """What else was true while the figures were measured, at start and at end.

    `load_*` are the 1, 5 and 15 minute load averages: other work on the
    machine slows contenders unevenly. `code_*` name the library's source (git
    commit and a hash of shared/, server/ and client/): the package is installed
    editable, so a change to those files during a run changes what is measured.
    """

    load_start: tuple[float, ...]
    load_end: tuple[float, ...]
    code_start: str
    code_end: str

    @classmethod
    def begin(cls) -> RunConditions:
        """Conditions now; call `finish` when the run ends."""
        load, code = os.getloadavg(), code_version()
        return cls(load, load, code, code)

    def finish(self) -> None:
        self.load_end, self.code_end = os.getloadavg(), code_version()

    @property
    def is_code_changed(self) -> bool:
        return self.code_start != self.code_end

    def describe(self) -> list[str]:
        """Markdown lines for the report's header."""

        def shown(load: tuple[float, ...]) -> str:
            return " / ".join(f"{value:.2f}" for value in load)

        lines = [
            f"Load average (1 / 5 / 15 min): {shown(self.load_start)} at start, "
            f"{shown(self.load_end)} at end  ",
            f"Code: {self.code_start}  ",
        ]
        if self.is_code_changed:
            lines.append(
                f"**Warning: the library's source changed during the run (now "
                f"{self.code_end}); the figures mix two versions. Run again.**  "
            )
        return lines


REPO_ROOT = Path(__file__).resolve().parent.parent
LIBRARY_DIRS = ("shared", "server", "client")


def code_version(root: Path = REPO_ROOT) -> str:
    """ "commit <hash>, source <hash>": the git commit and a hash of the library."""
    digest = hashlib.sha256()
    for directory in LIBRARY_DIRS:
        for path in sorted((root / directory).rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return f"commit {commit}, source {digest.hexdigest()[:12]}"


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


def table_header(item: str) -> tuple[str, ...]:
    """The comparison table's column names, counting in `item`s."""
    return (
        "Workload",
        "Contender",
        f"{item.capitalize()}s",
        "Median time",
        f"Per {item} (µs)",
        "Ratio to baseline",
        "Target",
    )


def render_table(results: Sequence[Result], item: str = "row") -> str:
    """A Markdown table, one line per result, in the order given."""
    lines = [
        "| " + " | ".join(table_header(item)) + " |",
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
    results: Sequence[Result],
    machine: Machine,
    command: str,
    groups: Sequence[Group],
    conditions: RunConditions | None = None,
) -> str:
    """The whole results.md: how it was run, then one section and table per group."""
    parts = [
        "# Benchmark results",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine.describe()}  ",
    ]
    if conditions is not None:
        parts += conditions.describe()
    parts += [
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
        parts += [f"- {note}" for note in RUN_NOTES.get(group.name, [])]
        if group.name in RUN_NOTES:
            parts.append("")
        table = (group.render_table or render_table)(mine, group.item)
        parts += [f"Timed repetitions: {repetitions}.", "", table]
    return "\n".join(parts) + "\n"


# -- writing files ----------------------------------------------------------------


def write_json(
    results: Sequence[Result],
    machine: Machine,
    command: str,
    path: Path,
    groups: Sequence[Group] = (),
    conditions: RunConditions | None = None,
) -> None:
    """Every repetition's raw seconds and ratios, plus the medians shown in tables."""
    records = []
    for result in results:
        record = asdict(result)
        record["median_seconds"] = result.median_seconds
        record["median_ratio"] = result.median_ratio
        record["per_row_us"] = result.per_row_us
        record["is_target_met"] = result.is_target_met
        record["is_latency_target_met"] = result.is_latency_target_met
        records.append(record)
    document = {
        "command": command,
        "machine": asdict(machine),
        "finished": dt.datetime.now().isoformat(timespec="seconds"),
        "conditions": None if conditions is None else asdict(conditions),
        "units": {
            "seconds": "s",
            "per_row_us": "µs",
            "ratios": "contender/baseline, of seconds per row",
            "extra": "named in each key (_ms, _per_s, counts)",
        },
        "groups": [
            {"name": group.name, "title": group.title, "item": group.item}
            for group in groups
        ],
        "run_notes": RUN_NOTES,
        "results": records,
    }
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def draw_comparison_chart(
    results: Sequence[Result],
    title: str,
    machine: Machine,
    path: Path,
    item: str = "row",
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
    left.set_xlabel(f"median time per {item} (µs)")
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
    conditions: RunConditions | None = None,
) -> str:
    """Write results.md, results.json and one chart per group; return the report."""
    out_dir.mkdir(parents=True, exist_ok=True)
    report = render_report(results, machine, command, groups, conditions)
    (out_dir / "results.md").write_text(report, encoding="utf-8")
    write_json(results, machine, command, out_dir / "results.json", groups, conditions)
    for group in groups:
        mine = [result for result in results if result.group == group.name]
        if mine:
            chart = out_dir / f"{group.name}.png"
            if group.draw_charts is None:
                draw_comparison_chart(mine, group.title, machine, chart, group.item)
            else:
                group.draw_charts(mine, group.title, machine, chart)
    return report
