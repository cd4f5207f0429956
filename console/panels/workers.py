"""One line per worker: state, task, handler, elapsed, progress bar and message."""

from __future__ import annotations

from rich.text import Text

from console.format import ago, bar, busy_of
from console.panels.text_panel import TextPanel
from engine import EngineSnapshot, WorkerInfo

BAR = 12


def worker_line(w: WorkerInfo, width: int, task_width: int = 7) -> Text:
    """``w3 #1204  images.resize   1.2s ━━━━╺──── 45% message`` fitted to ``width``.

    The handler name gets room first; the bar shows only when there is space for it
    and the message takes what is left.
    """
    if w.state == "idle":
        return Text(f"{w.id:>3}  idle", style="dim")
    mark = "↓" if w.state == "retiring" else " "
    left = f"{w.id:>3}{mark}#{w.task_id or '':<{task_width}} "
    tail = 7 + 4  # " 12.3s" + " 45%"
    handler = w.handler or ""
    handler_width = max(8, min(len(handler), width - len(left) - tail))
    bar_width = BAR if width - len(left) - handler_width - tail >= BAR + 1 else 0
    line = Text(left)
    line.append(f"{handler[:handler_width]:<{handler_width}}", style="bold")
    line.append(f" {ago(w.elapsed):>6}")
    if w.progress is not None:
        if bar_width:
            line.append(" " + bar(w.progress, bar_width), style="green")
        line.append(f" {w.progress * 100:3.0f}%")
    elif bar_width:
        line.append(" " * (bar_width + 5))
    if w.message:
        line.append(f" {w.message}", style="dim")
    line.truncate(width, overflow="ellipsis")
    return line


class WorkersPanel(TextPanel):
    TITLE = "Workers"

    DEFAULT_CSS = """
    WorkersPanel { overflow-y: auto; }
    """

    def title_for(self, snap: EngineSnapshot) -> str:
        busy, total = snap.busy_workers, snap.worker_count
        return f"Workers · {busy_of(busy, total)}" + (" busy" if busy <= total else "")

    def render_snapshot(self, snap: EngineSnapshot) -> Text:
        if not snap.workers:
            message = (
                "no workers: this engine only enqueues" if snap.worker_count == 0 else "starting…"
            )
            return Text(message, style="dim")
        width = max(20, self.content_region.width)
        task_width = max((len(w.task_id or "") for w in snap.workers), default=1)
        return Text("\n").join(worker_line(w, width, task_width) for w in snap.workers)
