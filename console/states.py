"""Task state colours from the theme: the same variables as the queue table's CSS
(see ``TaskTable.DEFAULT_CSS``), for text drawn with Rich (tables, the task detail)."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.color import Color, ColorParseError
from textual.widget import Widget

#: Theme variable per state (a paused schedule too); anything else (e.g. a schedule's
#: last run "expired") is muted.
STATE_VARIABLES = {
    "paused": "warning",
    "queued": "text",
    "scheduled": "secondary",
    "running": "warning",
    "succeeded": "success",
    "failed": "error",
    "cancelled": "text-muted",
}


def state_style(widget: Widget, state: str) -> Style:
    """The colour of ``state`` on ``widget``'s background (``auto 87%`` resolved too)."""
    variable = STATE_VARIABLES.get(state, "text-muted")
    value = widget.app.theme_variables.get(variable, "")
    background = widget.background_colors[0]
    try:
        if value.startswith("auto"):
            percent = value.removeprefix("auto").strip().rstrip("%") or "100"
            color = background.get_contrast_text(float(percent) / 100)
        else:
            color = Color.parse(value)
    except (ColorParseError, ValueError):
        return Style()
    return Style(color=(background + color).rich_color)


def state_text(widget: Widget, state: str, label: str | None = None) -> Text:
    """``label`` (the state's name by default) in the state's colour."""
    return Text(state if label is None else label, style=state_style(widget, state))
