"""One line per worker: state, task, handler, elapsed, progress bar and message; then
one line per worker process (``process`` executor): pid, tasks done and memory."""

from __future__ import annotations

from rich.text import Text

from console.format import ago, bar, busy_of
from console.panels.text_panel import TextPanel
from engine import EngineSnapshot, ProcessChild, WorkerInfo

BAR = 12


def worker_line(w: WorkerInfo, width: int, task_width: int = 7, handler_width: int = 0) -> Text:
    """``w3 #1204  images.resize   1.2s ━━━━╺──── 45% message`` fitted to ``width``.

    The id, task, elapsed time and percentage always show whole; the handler name
    gets room next (``handler_width``, the longest one shown, keeps the columns
    aligned), then the bar, and the message takes what is left (or is left out).
    """
    if w.state == "idle":
        return Text(f"{w.id:>3}  idle", style="dim")
    mark = "↓" if w.state == "retiring" else " "
    left = f"{w.id:>3}{mark}#{w.task_id or '':<{task_width}} "
    elapsed = f" {ago(w.elapsed):>6}"
    pct = f" {w.progress * 100:3.0f}%" if w.progress is not None else ""
    handler = w.handler or ""
    room = width - len(left) - len(elapsed) - len(pct)
    shown = max(1, min(max(handler_width, len(handler)), room))
    room -= shown
    bar_width = BAR if w.progress is not None and room >= BAR + 1 else 0
    room -= bar_width + 1 if bar_width else 0
    line = Text(left)
    name = handler if len(handler) <= shown else handler[: shown - 1] + "…"
    line.append(f"{name:<{shown}}", style="bold")
    line.append(elapsed)
    if bar_width:
        line.append(" " + bar(w.progress, bar_width), style="green")
    line.append(pct)
    if w.message and room >= 4:  # a space and at least three characters of it
        message = w.message if len(w.message) < room else w.message[: room - 2] + "…"
        line.append(f" {message}", style="dim")
    return line


def child_line(child: ProcessChild) -> Text:
    """``  pid 4242  12 tasks   48 MB  +5.0 MB/task`` (the growth only when it grows)."""
    rss = "   – MB" if child.rss is None else f"{child.rss / 2**20:5,.0f} MB"
    line = Text(f"  pid {child.pid:<7} {child.tasks:>5} tasks {rss}", style="dim")
    if child.growth is not None and child.growth >= 2**20 / 10:
        line.append(f"  +{child.growth / 2**20:,.1f} MB/task", style="yellow")
    return line


class WorkersPanel(TextPanel):
    TITLE = "Workers"

    DEFAULT_CSS = """
    WorkersPanel { overflow-y: auto; }
    """

    def title_for(self, snap: EngineSnapshot) -> str:
        busy, total = snap.busy_workers, snap.worker_count
        title = f"Workers · {busy_of(busy, total)}" + (" busy" if busy <= total else "")
        return title + (f" · {snap.buffered} buffered" if snap.buffered else "")

    def render_snapshot(self, snap: EngineSnapshot) -> Text:
        if not snap.workers:
            message = (
                "no workers: this engine only enqueues" if snap.worker_count == 0 else "starting…"
            )
            return Text(message, style="dim")
        width = max(20, self.content_region.width)
        task_width = max((len(w.task_id or "") for w in snap.workers), default=1)
        handler_width = max((len(w.handler or "") for w in snap.workers), default=0)
        lines = [worker_line(w, width, task_width, handler_width) for w in snap.workers]
        lines += [child_line(c) for c in snap.process_children if c.alive]
        return Text("\n").join(lines)
