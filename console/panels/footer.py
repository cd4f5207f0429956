"""The footer of every full screen (the dashboard, failed tasks, schedules). Under 140
columns it is compact, with short labels, so that every key still fits at 100 columns
(help and the command palette give the long descriptions); from 140 columns it also
shows the command palette's key. Under 100 columns (the compact layout) it also leaves
out a few keys (they still work, and ``?`` lists them)."""

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
#: Narrower than this, the footer leaves out the keys below.
NARROW = 100
#: Keys (by action) left out of a narrow footer: workers, settings, schedules, open, and
#: the failed screen's tabs (they show as tabs).
NARROW_HIDDEN = frozenset(
    {
        "workers(1)", "workers(-1)", "settings", "schedules", "open", "app.apply_finding",
        "show('failed')", "show('cancelled')",
    }
)  # fmt: skip


class KeysFooter(Footer):
    narrow = False

    def on_resize(self, event: Resize) -> None:
        compact = event.size.width < WIDE
        narrow = event.size.width < NARROW
        if compact != self.compact or self.show_command_palette == compact or narrow != self.narrow:
            self.compact = compact
            self.narrow = narrow
            self.show_command_palette = not compact
            self.refresh(recompose=True)  # the labels depend on it

    def compose(self) -> ComposeResult:
        shown, dropped = 0, False  # dropped: the keys of the group whose label comes next
        for widget in super().compose():
            if self.narrow and isinstance(widget, FooterKey) and widget.action in NARROW_HIDDEN:
                dropped = widget.has_class("-grouped")
                continue
            if isinstance(widget, FooterLabel) and dropped:
                dropped = False
                continue
            if self.compact and isinstance(widget, FooterKey):
                widget.description = SHORT_KEYS.get(widget.action, widget.description)
            elif self.compact and isinstance(widget, FooterLabel):
                text = str(widget.content)
                if text in SHORT_GROUPS:
                    widget.update(SHORT_GROUPS[text])
            if isinstance(widget, FooterKey):
                shown, dropped = shown + 1, False
            yield widget
        if self.narrow:
            self.styles.grid_size_columns = shown
