"""The footer of every full screen (the dashboard, failed tasks, schedules). Under 140
columns it is compact, with short labels, so that every key still fits at 100 columns
(help and the command palette give the long descriptions); from 140 columns it also
shows the command palette's key."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.events import Resize
from textual.widgets import Footer
from textual.widgets._footer import FooterKey, FooterLabel

#: Narrower than this, the footer is compact.
WIDE = 140
#: A key's short label (by action) in the compact footer.
SHORT_KEYS = {
    "settings": "Setup",
    "schedules": "Sched",
    "app.apply_finding": "Apply",
    "retry_all": "Retry all",
    "purge_all": "Purge all",
}
#: A key group's short label in the compact footer.
SHORT_GROUPS = {"Priority": "Prio", "Workers": "Pool"}


class KeysFooter(Footer):
    def on_resize(self, event: Resize) -> None:
        compact = event.size.width < WIDE
        if compact != self.compact or self.show_command_palette == compact:
            self.compact = compact
            self.show_command_palette = not compact
            self.refresh(recompose=True)  # the labels depend on it

    def compose(self) -> ComposeResult:
        for widget in super().compose():
            if self.compact and isinstance(widget, FooterKey):
                widget.description = SHORT_KEYS.get(widget.action, widget.description)
            elif self.compact and isinstance(widget, FooterLabel):
                text = str(widget.content)
                if text in SHORT_GROUPS:
                    widget.update(SHORT_GROUPS[text])
            yield widget
