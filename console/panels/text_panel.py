"""A panel that shows text rendered from a snapshot, and repaints only on change."""

from __future__ import annotations

from typing import Any

from rich.console import RenderableType
from rich.text import Text
from textual.widgets import Static

from engine import EngineSnapshot


class TextPanel(Static):
    """Subclasses implement :meth:`render_snapshot`; :meth:`update_from` skips the
    repaint when the text is the same as last time (an idle console costs ~nothing)."""

    DEFAULT_CSS = """
    TextPanel { height: 1fr; padding: 0 1; }
    """

    TITLE = ""

    def __init__(self, *, title: str | None = None, **kwargs: Any) -> None:
        super().__init__("", **kwargs)
        if title is not None:
            self.TITLE = title
        self._last: str | None = None
        # No links in these panels: skip the per-line restyling Textual does for them.
        self.set_reactive(TextPanel.auto_links, False)

    def on_mount(self) -> None:
        self.border_title = self.TITLE

    def render_snapshot(self, snap: EngineSnapshot) -> RenderableType:
        raise NotImplementedError

    def title_for(self, snap: EngineSnapshot) -> str:
        return self.TITLE

    def update_from(self, snap: EngineSnapshot) -> None:
        content = self.render_snapshot(snap)
        key = content.plain if isinstance(content, Text) else str(content)
        title = self.title_for(snap)
        if title != self.border_title:  # assigning the same title still repaints
            self.border_title = title
        if key != self._last:
            self._last = key
            self.update(content, layout=False)  # panels have fixed sizes: no relayout
