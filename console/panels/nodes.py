"""The nodes of a cluster (attach mode, in place of Workers): one row per engine
process on the store, from its heartbeat: id, host, pid, state, workers busy/total,
done/s, CPU, memory, and when it was last seen. The cursor picks the node that the
worker keys act on.

| Key | Does |
| --- | --- |
| up / down | choose a node |
| ] / [ / w | (app keys) one worker more / less on it, or set its count |
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual.events import Resize
from textual.widgets import DataTable

from console.cluster.node_rows import COLUMNS, cell_texts
from console.cluster.state import Cluster
from console.format import Column
from console.panels.task_table import fit
from engine import EngineSnapshot, NodeInfo

GAP = 1
MIN_NODE = 10
#: Dropped first when the panel is narrow.
DROP_ORDER = ("host", "pid", "seen", "mem", "cpu", "rate")
STATE_STYLE = {"alive": "green", "stopped": "dim", "dead": "bold red"}


def middle(text: str, width: int) -> str:
    """``text`` cut to ``width`` in the middle: ``build-serv…1234-beef``."""
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head) :]


def fitted_columns(width: int, id_width: int = MIN_NODE) -> tuple[tuple[Column, int], ...]:
    """The columns that fit ``width`` cells and their widths: the node id takes what the
    others leave; when that is under ``id_width`` (the longest id shown, at least
    MIN_NODE), whole columns are dropped so that ids show whole."""
    shown = list(COLUMNS)
    need = max(MIN_NODE, id_width)

    def rest() -> int:
        return width - sum(c.width for c in shown) - GAP * (len(shown) - 1)

    for key in DROP_ORDER:
        if rest() >= need:
            break
        shown = [c for c in shown if c.key != key]
    return tuple((c, c.width or max(MIN_NODE, rest())) for c in shown)


class NodesPanel(DataTable[Text]):
    DEFAULT_CSS = """
    NodesPanel { height: 1fr; background: transparent; }
    """

    def __init__(
        self, cluster: Cluster, now: Callable[[], float] = time.time, **kwargs: Any
    ) -> None:
        super().__init__(cursor_type="row", cell_padding=0, **kwargs)
        self.cluster = cluster
        self.now = now
        self._columns: tuple[tuple[Column, int], ...] = ()
        self._id_width = MIN_NODE  # the longest node id, so none is cut
        self._ids: list[str] = []
        self._cells: dict[str, dict[str, Text]] = {}

    def on_mount(self) -> None:
        self.border_title = "Nodes"

    def on_resize(self, event: Resize) -> None:
        self._fit(self.size.width)  # the event's size includes the border

    def _fit(self, width: int) -> None:
        columns = fitted_columns(max(20, width), self._id_width)
        if columns == self._columns:
            return
        self._columns = columns
        keep = self._selected_id()
        self.clear(columns=True)
        last = len(columns) - 1
        for i, (column, w) in enumerate(columns):
            label = Text(fit(column.label, w, column.right), style="bold")
            self.add_column(label, width=w + (GAP if i < last else 0), key=column.key)
        self._ids = []
        self._cells = {}
        self.show_nodes(keep)

    def _selected_id(self) -> str | None:
        if not self._ids or not 0 <= self.cursor_row < len(self._ids):
            return None
        return self._ids[self.cursor_row]

    @property
    def selected(self) -> NodeInfo | None:
        """The node under the cursor (as last read)."""
        node_id = self._selected_id()
        return self.cluster.find(node_id) if node_id is not None else None

    def update_from(self, snap: EngineSnapshot) -> None:
        self.show_nodes()

    def show_nodes(self, keep: str | None = None) -> None:
        """Draw the cluster's nodes: cells change in place; the rows are rebuilt only when
        nodes come or go (or change order), with the cursor kept on its node (or on
        ``keep``)."""
        if not self._columns:
            return
        now = self.now()
        nodes = self.cluster.nodes
        id_width = max((len(n.id) for n in nodes), default=MIN_NODE)
        if id_width != self._id_width:  # longer (or shorter) ids: choose the columns again
            self._id_width = id_width
            before = self._columns
            self._fit(self.size.width)
            if self._columns != before:
                return  # the new columns' rows are drawn
        cells = {n.id: self._styled(n, now) for n in nodes}
        ids = [n.id for n in nodes]
        if ids == self._ids:
            for node_id, row in cells.items():
                old = self._cells[node_id]
                for key, value in row.items():
                    if value != old.get(key):
                        self.update_cell(node_id, key, value)
        else:
            keep = self._selected_id() or keep
            self.clear()
            for node_id in ids:
                self.add_row(*cells[node_id].values(), key=node_id)
            if keep in ids:
                self.move_cursor(row=ids.index(keep), animate=False)
            self._ids = ids
        self._cells = cells
        self._titles()

    def _styled(self, node: NodeInfo, now: float) -> dict[str, Text]:
        texts = cell_texts(node, now)
        row_style = "" if node.state == "alive" else "dim"
        out = {}
        for column, width in self._columns:
            style = STATE_STYLE.get(node.state, "") if column.key == "state" else row_style
            text = texts[column.key]
            if column.key == "node" and len(text) > width:  # the end (pid, suffix) tells
                text = middle(text, width)  # nodes of one host apart: keep both ends
            out[column.key] = Text(fit(text, width, column.right), style=style)
        return out

    def _titles(self) -> None:
        counts = {s: sum(1 for n in self.cluster.nodes if n.state == s) for s in STATE_STYLE}
        parts = [f"{n} {s}" for s, n in counts.items() if n]
        title = "Nodes · " + " · ".join(parts) if parts else "Nodes"
        if title != self.border_title:
            self.border_title = title
        if not self.cluster.loaded:
            hint = "reading the nodes…"
        elif not self.cluster.nodes:
            hint = "no nodes yet: an engine with workers on this store joins within a second"
        else:
            hint = "] [ w: workers of the selected node"
        if hint != self.border_subtitle:
            self.border_subtitle = hint
