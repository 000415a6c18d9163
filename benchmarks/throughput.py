"""Throughput sweeps (many writers, readers): records, table and charts.

A sweep runs each contender at several process counts ("8 workers") and
records, per repetition, a `Summary` of the timed window: operations per
second over all processes together, latency percentiles and errors. Results
keep the `Result` shape of the other groups: `seconds` is the window of each
repetition, `rows` the median number of operations in it, and `ratios` the
contender's seconds per operation over the baseline's in the same repetition
(lower is better), so results.json reads the same for every group. The table
and charts show the reciprocal, throughput over the baseline's (higher is
better), which is what a reader of a sweep looks for.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from .common import ChartDrawer, Machine, Result
from .processes import Summary


class SweepPoint(NamedTuple):
    """One workload of a sweep: its contenders, baseline and targets.

    `throughput_target` is a lower bound on target_contender's operations per
    second divided by the baseline's; `latency_target_ms` an upper bound on its
    p99 latency.
    """

    name: str
    baseline: str
    contenders: tuple[str, ...]
    target_contender: str | None = None
    throughput_target: float | None = None
    latency_target_ms: float | None = None


def sweep_workload(series: str, count: int, unit: str) -> str:
    """A workload name a chart can read back: "durability full, 8 workers"."""
    counted = f"{count} {unit.removesuffix('s') if count == 1 else unit}"
    return f"{series}, {counted}" if series else counted


def parse_sweep_workload(name: str) -> tuple[str, int]:
    """(series, count) of a name made by `sweep_workload`; ValueError otherwise."""
    series, _, point = name.rpartition(", ")
    match = re.fullmatch(r"(\d+) \w+", point)
    if match is None:
        raise ValueError(f"{name!r} is not a sweep workload name.")
    return series, int(match.group(1))


class SweepTimings:
    """Summaries collected per (workload, contender), one per repetition.

    `side` summaries describe helper processes of the same run (the writers
    beside the readers) and are reported as extra figures only.
    """

    def __init__(self, group: str) -> None:
        self.group = group
        self._main: dict[tuple[str, str], list[Summary]] = {}
        self._side: dict[tuple[str, str], list[Summary]] = {}

    def add(
        self, workload: str, contender: str, main: Summary, side: Summary | None = None
    ) -> None:
        self._main.setdefault((workload, contender), []).append(main)
        if side is not None:
            self._side.setdefault((workload, contender), []).append(side)

    def results(self, points: Sequence[SweepPoint]) -> list[Result]:
        """A Result per contender of each point measured, ratios per repetition."""
        results = []
        for point in points:
            if (point.name, point.baseline) not in self._main:
                continue
            baseline = self._main[(point.name, point.baseline)]
            for contender in point.contenders:
                results.append(self._result(point, contender, baseline))
        return results

    def _result(
        self, point: SweepPoint, contender: str, baseline: list[Summary]
    ) -> Result:
        runs = self._main[(point.name, contender)]
        is_target = contender == point.target_contender
        return Result(
            self.group,
            point.name,
            contender,
            point.baseline,
            int(statistics.median(run.operations for run in runs)),
            [run.seconds for run in runs],
            [
                _seconds_per_operation(mine) / _seconds_per_operation(base)
                for mine, base in zip(runs, baseline, strict=True)
            ],
            target_ratio=(
                1 / point.throughput_target
                if is_target and point.throughput_target
                else None
            ),
            latency_target_ms=point.latency_target_ms if is_target else None,
            extra=_extra(runs, self._side.get((point.name, contender), [])),
        )


def _seconds_per_operation(summary: Summary) -> float:
    if summary.operations == 0:
        return float("inf")
    return summary.seconds / summary.operations


def _extra(runs: list[Summary], side: list[Summary]) -> dict[str, list[float]]:
    extra = {
        "operations_per_s": [run.per_second for run in runs],
        "p50_latency_ms": [run.p50_ms for run in runs],
        "p99_latency_ms": [run.p99_ms for run in runs],
        "max_latency_ms": [run.max_ms for run in runs],
        "errors": [float(run.errors.total()) for run in runs],
    }
    if side:
        extra["side_operations_per_s"] = [run.per_second for run in side]
        extra["side_errors"] = [float(run.errors.total()) for run in side]
    return extra


# -- table ------------------------------------------------------------------------


def throughput_ratio(result: Result) -> float:
    """Median over repetitions of operations/s divided by the baseline's."""
    return statistics.median(
        1 / ratio if ratio else float("inf") for ratio in result.ratios
    )


def format_ms(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def format_targets(result: Result) -> str:
    parts = []
    if result.target_ratio is not None:
        verdict = "met" if result.is_target_met else "missed"
        parts.append(f"≥ {1 / result.target_ratio:.1f}× {result.baseline} ({verdict})")
    if result.latency_target_ms is not None:
        verdict = "met" if result.is_latency_target_met else "missed"
        parts.append(f"p99 ≤ {result.latency_target_ms:g} ms ({verdict})")
    return "; ".join(parts)


def render_sweep_table(
    results: Sequence[Result], item: str, side_label: str | None = None
) -> str:
    """Markdown: per workload and contender, throughput, latencies, errors, target."""
    header = [
        "Workload",
        "Contender",
        f"{item.capitalize()}s/s",
        f"{item.capitalize()}s/s ÷ baseline",
        "p50 latency (ms)",
        "p99 latency (ms)",
        "max latency (ms)",
        "Errors (all repetitions)",
    ]
    header += [side_label] if side_label else []
    header.append("Target")
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---", "---"] + ["---:"] * (len(header) - 3) + ["---"]) + "|",
    ]
    lines += ["| " + " | ".join(_row(result, side_label)) + " |" for result in results]
    return "\n".join(lines)


def _row(result: Result, side_label: str | None) -> list[str]:
    errors = sum(result.extra["errors"]) + sum(result.extra.get("side_errors", []))
    ratio = f"{throughput_ratio(result):.2f}×"
    if result.is_baseline:
        ratio += " (baseline)"
    cells = [
        result.workload,
        result.contender,
        f"{result.median_extra('operations_per_s'):,.0f}",
        ratio,
        format_ms(result.median_extra("p50_latency_ms")),
        format_ms(result.median_extra("p99_latency_ms")),
        format_ms(result.median_extra("max_latency_ms")),
        f"{errors:,.0f}",
    ]
    if side_label:
        cells.append(f"{result.median_extra('side_operations_per_s'):,.0f}")
    cells.append(format_targets(result))
    return cells


# -- charts -----------------------------------------------------------------------


def sweep_chart_drawer(item: str, count_label: str) -> ChartDrawer:
    """A drawer of one PNG per series: throughput and p99 latency against count."""

    def draw(
        results: Sequence[Result], title: str, machine: Machine, path: Path
    ) -> None:
        series_names = dict.fromkeys(
            parse_sweep_workload(result.workload)[0] for result in results
        )
        for series in series_names:
            mine = [
                result
                for result in results
                if parse_sweep_workload(result.workload)[0] == series
            ]
            slug = re.sub(r"[^a-z0-9]+", "-", series.lower()).strip("-")
            target = path.with_name(f"{path.stem}-{slug}.png") if slug else path
            heading = f"{title} — {series}" if series else title
            draw_series_chart(mine, heading, machine, target, item, count_label)

    return draw


def draw_series_chart(
    results: Sequence[Result],
    title: str,
    machine: Machine,
    path: Path,
    item: str,
    count_label: str,
) -> None:
    """Left: operations/s against process count; right: p99 latency (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    counts = sorted({parse_sweep_workload(r.workload)[1] for r in results})
    for index, contender in enumerate(dict.fromkeys(r.contender for r in results)):
        mine = sorted(
            (r for r in results if r.contender == contender),
            key=lambda r: parse_sweep_workload(r.workload)[1],
        )
        xs = [parse_sweep_workload(r.workload)[1] for r in mine]
        style: dict[str, Any] = {
            "marker": "o",
            "color": f"C{index}",
            "label": contender,
        }
        left.plot(xs, [r.median_extra("operations_per_s") for r in mine], **style)
        right.plot(xs, [r.median_extra("p99_latency_ms") for r in mine], **style)
    _draw_latency_targets(right, results)
    for axes in (left, right):
        axes.set_xscale("log", base=2)
        axes.set_xticks(counts, [str(count) for count in counts])
        axes.set_xlabel(count_label)
        axes.grid(alpha=0.3)
    _scale_throughput_axis(left, item, results)
    right.set_yscale("log")
    right.set_ylabel(f"p99 latency of one {item} (ms, log scale)")
    handles, labels = right.get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncols=len(labels), frameon=False)
    repetitions = max(len(result.seconds) for result in results)
    figure.suptitle(f"{title}\n{machine.short()}; medians of {repetitions} repetitions")
    figure.tight_layout(rect=(0, 0.07, 1, 1))
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _scale_throughput_axis(axes: Any, item: str, results: Sequence[Result]) -> None:
    """Linear from zero, or logarithmic when contenders differ by over 20 times."""
    rates = [r.median_extra("operations_per_s") for r in results]
    label = f"{item}s per second, all processes together"
    if min(rates) > 0 and max(rates) / min(rates) > 20:
        axes.set_yscale("log")
        label += " (log scale)"
    else:
        axes.set_ylim(bottom=0)
    axes.set_ylabel(label)


def _draw_latency_targets(axes: Any, results: Sequence[Result]) -> None:
    bounds = {r.latency_target_ms for r in results if r.latency_target_ms is not None}
    for bound in bounds:
        axes.axhline(
            bound,
            color="red",
            linestyle="--",
            linewidth=1,
            label=f"target: p99 ≤ {bound:g} ms",
        )
