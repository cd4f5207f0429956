"""The dashboard's footer: on a narrow terminal it leaves out the keys that only fit a
wide one (they still work, and help and the command palette list them)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

#: Actions whose keys the compact (narrow) footer leaves out.
WIDE_ONLY = frozenset({"schedules"})


class DashboardFooter(Footer):
    def compose(self) -> ComposeResult:
        for widget in super().compose():
            if self.compact and isinstance(widget, FooterKey) and widget.action in WIDE_ONLY:
                continue
            yield widget
