"""Plain-text formatting shared by the panels: numbers, ages, bars, sparklines, charts."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

BLOCKS = " ▁▂▃▄▅▆▇█"


@dataclass(frozen=True)
class Column:
    """A column of a text table (the task list, the Nodes panel, ``taskdeck nodes``)."""

    key: str
    label: str
    width: int  # 0: takes the remaining width
    right: bool = False


def num(value: float) -> str:
    """1,204 — or 1.2k/3.4M when it must be short."""
    return f"{value:,.0f}"


def busy_of(busy: int, total: int) -> str:
    """Busy workers of a pool: ``3/8``; while a shrunk pool's extra workers finish their
    tasks (busy > total), what is true: ``7 busy / 6 (1 finishing)``."""
    if busy <= total:
        return f"{busy}/{total}"
    return f"{busy} busy / {total} ({busy - total} finishing)"


def short_num(value: float) -> str:
    if abs(value) < 10_000:
        return f"{value:,.0f}" if value == int(value) else f"{value:.1f}"
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.1f}{unit}"
    return f"{value:.0f}"


def rate(value: float) -> str:
    """Per-second rates: 0.4, 12, 1,204."""
    return f"{value:.1f}" if value < 10 else f"{value:,.0f}"


def ago(seconds: float | None) -> str:
    """A duration as 850ms, 12s, 4m12s, 3h05m, 2d4h."""
    if seconds is None:
        return "–"
    s = max(0.0, seconds)
    if s < 1:
        return f"{s * 1000:.0f}ms"
    if s < 60:
        return f"{s:.0f}s" if s >= 10 else f"{s:.1f}s"
    if s < 3600:
        return f"{int(s // 60)}m{int(s % 60):02d}s"
    if s < 86400:
        return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m"
    return f"{int(s // 86400)}d{int(s % 86400 // 3600)}h"


def clock(at: float, *, date: bool = True, millis: bool = False) -> str:
    """A local time: ``2026-12-05 18:24:02`` (``date=False``: the time alone; ``millis``:
    with ``.123``)."""
    text = time.strftime("%Y-%m-%d %H:%M:%S" if date else "%H:%M:%S", time.localtime(at))
    return f"{text}.{int(at % 1 * 1000):03d}" if millis else text


def when(at: float | None, now: float) -> str:
    """A local time and how far it is from now: ``2026-12-05 18:24:02 (4.2s ago)``."""
    if at is None:
        return "–"
    delta = now - at
    return f"{clock(at)} ({ago(abs(delta))} {'ago' if delta >= 0 else 'from now'})"


def paused_by(by: str, at: float, note: str | None, now: float | None = None) -> str:
    """Who paused everything, when and why: ``by alice@web1 at 2026-12-05 14:02:11
    (4m12s ago): deploy``."""
    text = f"by {by} at {when(at, time.time() if now is None else now)}"
    return f"{text}: {note}" if note else text


def size(n_bytes: float) -> str:
    for unit, factor in (("GB", 2**30), ("MB", 2**20), ("kB", 2**10)):
        if n_bytes >= factor:
            return (
                f"{n_bytes / factor:,.1f} {unit}"
                if n_bytes < 10 * factor
                else (f"{n_bytes / factor:,.0f} {unit}")
            )
    return f"{n_bytes:.0f} B"


def bar(fraction: float | None, width: int) -> str:
    """A progress bar of ``width`` cells: ━━━━━╺────."""
    if fraction is None or width <= 0:
        return " " * max(0, width)
    f = min(1.0, max(0.0, fraction))
    full = int(f * width)
    rest = width - full
    return "━" * full + ("╺" + "─" * (rest - 1) if rest > 0 else "")


def spark(values: Sequence[float], width: int, top: float | None = None) -> str:
    """The last ``width`` values as one line of blocks ▁▂▃▅▇ (scaled to ``top``)."""
    tail = list(values)[-width:] if width > 0 else []
    if not tail:
        return " " * width
    peak = top if top is not None else max(tail)
    if peak <= 0:
        return "▁" * len(tail) + " " * (width - len(tail))
    cells = "".join(BLOCKS[1 + min(7, int(v / peak * 7.999))] if v > 0 else "▁" for v in tail)
    return " " * (width - len(tail)) + cells


def nice_top(value: float) -> float:
    """A round number at or above ``value`` for a chart's y axis (1, 2, 5 × 10ⁿ)."""
    if value <= 0:
        return 1.0
    exp = math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        top = step * 10**exp
        if top >= value:
            return float(top)
    return float(10 ** (exp + 1))


def column_chart(values: Sequence[float], width: int, height: int, top: float) -> list[str]:
    """Rows of a column chart, top row first: each cell is one of 8 block heights."""
    tail = list(values)[-width:]
    tail = [0.0] * (width - len(tail)) + tail
    rows = []
    for row in range(height - 1, -1, -1):
        line = []
        for v in tail:
            fill = (v / top * height - row) if top > 0 else 0.0
            if fill <= 0:
                line.append(" ")
            elif fill >= 1:
                line.append("█")
            else:
                line.append(BLOCKS[max(1, int(fill * 8))])
        rows.append("".join(line))
    return rows


def parse_time(text: str, what: str = "--run-at") -> datetime:
    """An ISO 8601 time with its UTC offset (``2026-11-23T02:00:00+01:00`` or ``…Z``);
    ``ValueError`` saying what is allowed otherwise (``what`` names the field)."""
    try:
        at = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{what} must be an ISO 8601 time with a UTC offset, e.g. "
            f"2026-11-23T02:00:00+01:00 or 2026-11-23T01:00:00Z; got {text!r}"
        ) from None
    if at.tzinfo is None:
        raise ValueError(
            f"{what} {text!r} has no UTC offset, so it is ambiguous; add one, e.g. "
            f"{text.strip()}+00:00"
        )
    return at
