"""The findings, worst first, with their evidence and suggestion.

| Key | Does |
| --- | --- |
| x | apply the highlighted finding's suggested command |
"""

from __future__ import annotations

from typing import Any, Literal

from rich.text import Text
from textual import on
from textual.binding import Binding
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from engine import EngineSnapshot, Finding

BADGE = {
    "critical": ("CRIT", "bold white on red"),
    "warning": ("WARN", "bold black on yellow"),
    "info": ("INFO", "bold white on blue"),
}


def finding_text(f: Finding) -> Text:
    label, style = BADGE[f.severity]
    text = Text()
    text.append(f" {label} ", style=style)
    if f.node is not None:
        text.append(f" {f.node}:", style="bold cyan")
    text.append(f" {f.title}", style="bold")
    text.append(f"\n{f.evidence}", style="dim")
    text.append(f"\n→ {f.suggestion}")
    return text


def all_clear() -> Option:
    text = Text("All clear: nothing is holding the engine back.", style="dim")
    return Option(text, disabled=True)


#: Seconds between redraws when only a finding's numbers change.
NUMBERS_EVERY = 5.0


def redraw_due(
    drawn: tuple[Finding, ...], drawn_at: float, snap: EngineSnapshot
) -> Literal["numbers", "all"] | None:
    """What of the panel ``snap`` redraws: nothing (None), the numbers in place (the same
    findings with new numbers, at most every :data:`NUMBERS_EVERY` s), or all of it."""
    if snap.findings == drawn:
        return None
    shape = [(f.rule, f.severity) for f in snap.findings]
    if shape == [(f.rule, f.severity) for f in drawn] and drawn:
        return None if snap.at - drawn_at < NUMBERS_EVERY else "numbers"
    return "all"


class BottlenecksPanel(OptionList):
    BINDINGS = [Binding("x", "app.apply_finding", "Apply suggestion")]

    DEFAULT_CSS = """
    BottlenecksPanel { height: 1fr; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.findings: tuple[Finding, ...] = ()  # as drawn (x applies what is shown)
        self._drawn_at = 0.0

    def on_mount(self) -> None:
        self.border_title = "Bottlenecks"
        self.add_option(all_clear())  # until a snapshot says otherwise

    def update_from(self, snap: EngineSnapshot) -> None:
        """Redraw when the findings change; when only their numbers move, at most every
        few seconds (each redraw of wrapped text costs a few milliseconds)."""
        redraw = redraw_due(self.findings, self._drawn_at, snap)
        if redraw is None:
            return
        if redraw == "numbers":
            self.findings = snap.findings
            self._drawn_at = snap.at
            for index, finding in enumerate(self.findings):  # in place: no relayout
                self.replace_option_prompt_at_index(index, finding_text(finding))
            return
        keep = self.highlighted
        self.findings = snap.findings
        self._drawn_at = snap.at
        self.clear_options()
        if not self.findings:
            self.add_option(all_clear())
        else:
            self.add_options([Option(finding_text(f)) for f in self.findings])
            self.highlighted = min(keep or 0, len(self.findings) - 1)
        worst = self.findings[0].severity if self.findings else "ok"
        self.border_title = (
            f"Bottlenecks · {len(self.findings)}" if self.findings else "Bottlenecks"
        )
        self.set_class(worst == "critical", "-critical")
        self._show_apply_hint()

    @on(OptionList.OptionHighlighted)
    def _show_apply_hint(self) -> None:
        """``x apply`` under the panel while the highlighted finding has a command."""
        finding = self.selected
        hint = "x: apply the suggestion" if finding and finding.action else ""
        if self.border_subtitle != hint:
            self.border_subtitle = hint

    @property
    def selected(self) -> Finding | None:
        index = self.highlighted
        if self.findings and index is not None and 0 <= index < len(self.findings):
            return self.findings[index]
        return None
