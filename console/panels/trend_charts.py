"""The Trends screen's charts, rendered from history points: throughput, success
rate, wait p95, run p95 and backlog, one column chart each over the same time axis.

Pure functions of the points and the space: the screen only hands them over."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rich.console import RenderableType
from rich.text import Text
from textual.widget import Widget

from console.format import ago, column_chart, nice_top, short_num
from engine import TrendPoint

AXIS = 6  # width of the y-axis labels


@dataclass(frozen=True)
class Chart:
    """One chart: its title, how a point reads, how columns merge, how values read."""

    title: str
    value: Callable[[TrendPoint], float | None]
    merge: Callable[[Sequence[float]], float]
    label: Callable[[float], str]
    style: str
    top: float | None = None  # a fixed top (the success rate's 100 %)
    axis: Callable[[float], str] = short_num  # the y-axis label (short)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _pct(value: float | None) -> float | None:
    return None if value is None else value * 100.0


def _percent(value: float) -> str:
    return f"{value:.1f}%" if value < 99.95 else "100%"


CHARTS = (
    Chart("Throughput", lambda p: p.throughput, _mean, lambda v: f"{short_num(v)}/min", "green"),
    Chart("Success rate", lambda p: _pct(p.success_rate), min, _percent, "cyan", 100.0,
          _percent),
    Chart("Wait p95", lambda p: p.wait_p95, max, ago, "yellow", axis=ago),
    Chart("Run p95", lambda p: p.run_p95, max, ago, "magenta", axis=ago),
    Chart("Backlog", lambda p: None if p.backlog is None else float(p.backlog), max,
          short_num, "blue"),
)  # fmt: skip


def columns(values: Sequence[float | None], width: int, merge: Callable[..., float]) -> list[float]:
    """``values`` spread over ``width`` columns: each widened when there are fewer,
    merged (mean, min or max) in runs when there are more. None (no data) reads 0."""
    if not values or width <= 0:
        return [0.0] * max(0, width)
    if len(values) <= width:  # each value gets its share of the width
        return [values[i * len(values) // width] or 0.0 for i in range(width)]
    size = math.ceil(len(values) / width)
    out = []
    for i in range(0, len(values), size):
        known = [v for v in values[i : i + size] if v is not None]
        out.append(merge(known) if known else 0.0)
    return out


def render(points: Sequence[TrendPoint], width: int, height: int, span: str) -> Text:
    """Every chart over ``points`` in ``width`` × ``height`` cells (each chart a title
    line and at least one row; one time axis at the bottom). The period still going
    on is left out (a partial hour would read as a drop)."""
    points = points[:-1] if len(points) > 1 else points
    plot = max(8, width - AXIS - 2)
    rows, extra = divmod(max(len(CHARTS), height - 1 - len(CHARTS)), len(CHARTS))
    text = Text()
    for n, chart in enumerate(CHARTS):
        rows_here = rows + (1 if n < extra else 0)  # the first charts take what is left
        values = [chart.value(p) for p in points]
        known = [v for v in values if v is not None]
        cols = columns(values, plot, chart.merge)
        top, base = chart.top or nice_top(max([*cols, 0.0])), 0.0
        if chart.top is not None and known:  # a rate near its top: the axis starts lower
            base = max(0.0, min(90.0, math.floor(min(known) / 10.0) * 10.0 - 10.0))
            cols = [max(0.0, c - base) if c else 0.0 for c in cols]
        last = f"{chart.label(known[-1])} last" if known else "no data"
        peak = f" · peak {chart.label(max(known))}" if known and chart.top is None else ""
        text.append(f"{chart.title:<13}", style="bold")
        text.append(f"{last}{peak}\n", style="dim")
        for i, line in enumerate(column_chart(cols, len(cols), rows_here, top - base)):
            label = chart.axis(top) if i == 0 else chart.axis(base) if i == rows_here - 1 else ""
            text.append(f"{label[:AXIS]:>{AXIS}} ┤", style="dim")
            text.append(line + "\n", style=chart.style)
    first = time.strftime("%m-%d %H:%M", time.localtime(points[0].t)) if points else ""
    axis = f"{first} ({span} ago)".ljust(plot - 3) + "now" if plot > 30 else "now".rjust(plot)
    text.append(" " * AXIS + " └" + axis, style="dim")
    return text


class TrendCharts(Widget):
    """The charts, redrawn at whatever size the widget has (resizing redraws them);
    ``message`` instead of charts when there is nothing to draw."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.points: Sequence[TrendPoint] = ()
        self.span = ""
        self.message = ""

    def show(self, points: Sequence[TrendPoint], span: str, message: str = "") -> None:
        self.points, self.span, self.message = points, span, message
        self.refresh()

    def render(self) -> RenderableType:
        if self.message or not self.points:
            return self.message
        region = self.content_region
        return render(self.points, region.width, region.height, self.span)
