"""One line per worker: state, task, handler, elapsed, progress bar and message."""

from __future__ import annotations

from rich.text import Text

from console.format import ago, bar
from console.panels.text_panel import TextPanel
from engine import EngineSnapshot, WorkerInfo

BAR = 12


def worker_line(w: WorkerInfo, width: int) -> Text:
    """``w3  #1204  images.resize  1.2s  ━━━━╺──── 45% message`` fitted to ``width``."""
    if w.state == "idle":
        return Text(f"{w.id:>4}  idle", style="dim")
    mark = "↓" if w.state == "retiring" else " "
    left = f"{w.id:>4}{mark}#{w.task_id or '':<7} "
    bar_width = BAR if width >= 56 else 0  # narrow: the percentage alone
    fixed = len(left) + 9 + (bar_width + 1 if bar_width else 0) + 4
    handler_width = max(8, min(28, width - fixed))
    line = Text(left)
    line.append(f"{(w.handler or '')[:handler_width]:<{handler_width}}", style="bold")
    line.append(f" {ago(w.elapsed):>7} ")
    if w.progress is not None:
        if bar_width:
            line.append(bar(w.progress, bar_width) + " ", style="green")
        line.append(f"{w.progress * 100:3.0f}%")
    else:
        line.append(" " * (bar_width + 1 + 4 if bar_width else 4))
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
        return f"Workers · {snap.busy_workers}/{snap.worker_count} busy"

    def render_snapshot(self, snap: EngineSnapshot) -> Text:
        if not snap.workers:
            message = (
                "no workers: this engine only enqueues" if snap.worker_count == 0 else "starting…"
            )
            return Text(message, style="dim")
        width = max(20, self.content_region.width)
        return Text("\n").join(worker_line(w, width) for w in snap.workers)
