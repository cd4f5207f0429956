"""Which screens show: the dashboard stays visible (and live) under dialogs."""

from __future__ import annotations

from collections.abc import Sequence

from textual.screen import ModalScreen, Screen


def dashboard_shows(stack: Sequence[Screen[object]]) -> bool:
    """True while the dashboard (``stack[0]``) is on screen: on top, or covered only by
    dialogs (modal screens draw over it; it shows around and behind them). A full
    screen (failed tasks, schedules) hides it; that screen refreshes its own content.
    False with no screen at all (the app is closing: a late tick has nothing to feed)."""
    return bool(stack) and all(isinstance(screen, ModalScreen) for screen in stack[1:])
