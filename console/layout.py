"""The dashboard's layout by terminal size.

From :data:`FULL_SIZE` (100×30) up every panel shows. From :data:`MIN_SIZE` (80×24) to
below that, the layout is *compact*: one panel at a time takes the screen, the queue
first; ``g`` shows the next one (queue, workers or nodes, resources, throughput,
bottlenecks, events) and ``G`` the one before. Every key keeps working whatever panel
shows (``c`` cancels the queue's selected task from the Workers view too), and the keys
of the queue table (a state tab, the filter, marks, freeze) bring the queue back.
Below 80×24 a box asks for a larger window.
"""

from __future__ import annotations

from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Input, Static

MIN_SIZE = (80, 24)
FULL_SIZE = (100, 30)
#: The compact layout's views, in the order ``g`` shows them.
VIEWS = ("queue", "pool", "resources", "throughput", "bottlenecks", "events")


def too_small_text(width: int, height: int) -> str:
    return (
        f"Terminal too small: {width}×{height}.\n"
        f"Taskdeck needs at least {MIN_SIZE[0]}×{MIN_SIZE[1]}:\n"
        "make the window larger (or press q to quit)."
    )


class Layout:
    """Which layout the dashboard has, and which panel the compact one shows."""

    def __init__(self) -> None:
        self.compact = False
        self.view = VIEWS[0]

    def fit(self, board: Screen[object], width: int, height: int) -> None:
        """Lay the dashboard out for a ``width``×``height`` terminal."""
        small = width < MIN_SIZE[0] or height < MIN_SIZE[1]
        box = board.query_one("#too-small")
        box.display = small
        if small:
            board.query_one("#too-small-text", Static).update(too_small_text(width, height))
        compact = width < FULL_SIZE[0] or height < FULL_SIZE[1]
        if compact != self.compact:
            self.compact = compact
            board.set_class(compact, "-compact")
            self._apply(board, focus=False)

    def step(self, board: Screen[object], delta: int) -> str:
        """Show the next (``delta`` 1) or previous (-1) panel; returns its name."""
        self.view = VIEWS[(VIEWS.index(self.view) + delta) % len(VIEWS)]
        self._apply(board, focus=True)
        return self.view

    def show_queue(self, board: Screen[object]) -> None:
        """Bring the queue back (a key that acts on its table was pressed)."""
        if self.compact and self.view != "queue":
            self.view = "queue"
            self._apply(board, focus=True)

    def _apply(self, board: Screen[object], *, focus: bool) -> None:
        panels = views(board)
        for name, panel in panels.items():
            panel.display = not self.compact or name == self.view
        for box in board.query("#top, #middle"):
            box.display = any(child.display for child in box.children)
        if focus and self.compact:
            target = focus_target(panels[self.view])
            if target is not None:
                target.focus()
            else:
                board.set_focus(None)


def views(board: Screen[object]) -> dict[str, Widget]:
    """The dashboard's panels by view name."""
    top = board.query_one("#top")
    pool = next(child for child in top.children if child.id != "queue")
    found = {name: board.query_one(f"#{name}") for name in VIEWS if name != "pool"}
    return {**found, "pool": pool}


def focus_target(panel: Widget) -> Widget | None:
    """What gets the focus when ``panel`` is shown: the queue's table, else the panel or
    the first of its widgets that takes the focus (not an input)."""
    if panel.id == "queue":
        return panel.query_one("#tasks", Widget)
    candidates: list[Widget] = [panel, *panel.query(Widget)]
    for widget in candidates:
        if widget.can_focus and not isinstance(widget, Input):
            return widget
    return None
