"""The Alerts screen (A): the number firing in the header, firing alerts first with
their history, acknowledge (a) and silence with a note (s)."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input, Static

from console.app import ConsoleApp
from console.panels.header import HeaderBar
from console.screens.alert_silence import SilenceScreen
from console.screens.alerts import AlertsScreen, AlertTable
from engine import Engine

from .console_helpers import build_engine, settle, started, text_of, toasts, until


@pytest.fixture
def engine(db_path: Path) -> Engine:
    engine = build_engine(db_path, workers=0)
    engine.alerts.configure(
        {
            "evaluate_every": "0.1s",
            "rules": {
                "images-backlog": "queue:images backlog > 0 severity critical",
                "huge": "backlog > 100",
            },
        }
    )
    return engine


def rows(app: ConsoleApp) -> list[list[str]]:
    assert isinstance(app.screen, AlertsScreen), app.screen
    table = app.screen.query_one(AlertTable)
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


async def test_the_header_counts_firing_alerts_and_a_opens_them_with_ack_and_silence(
    engine: Engine,
) -> None:
    app = ConsoleApp(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        header = app.dashboard.query_one(HeaderBar)
        assert "alert firing" not in text_of(header)
        await engine.enqueue("images.resize", {"job_id": "a"})
        await until(pilot, lambda: "▲ 1 alert firing (A)" in text_of(header), timeout=10)

        await pilot.press("A")
        await settle(pilot)
        await until(pilot, lambda: isinstance(app.screen, AlertsScreen) and app.screen.loaded)
        [row] = rows(app)
        assert row[1:5] == ["firing", "critical", "images-backlog", "queue:images"]
        history = app.screen.query_one("#alert-history", Static)
        await until(pilot, lambda: "firing" in text_of(history))
        summary = text_of(app.screen.query_one("#alerts-summary", Static))
        assert "1 firing · 0 pending" in summary

        # a: acknowledge
        await pilot.press("a")
        await settle(pilot)
        assert any("acknowledged: no more repeats" in t for t in toasts(app))
        [alert] = await engine.alerts.recent()
        assert alert.acked_by is not None and alert.acked_by.endswith("(console)")
        await until(pilot, lambda: rows(app)[0][1] == "firing ✓ack")

        # s: silence the rule; an empty note is refused in the dialog
        await pilot.press("s")
        await settle(pilot)
        assert isinstance(app.screen, SilenceScreen)
        await pilot.press("enter")
        await settle(pilot)
        error = app.screen.query_one("#silence-error", Static)
        assert "a silence needs a note" in text_of(error)
        app.screen.query_one("#silence-note", Input).value = "resizer redeploy"
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, AlertsScreen)
        [silence] = await engine.alerts.silences()
        assert (silence.rule, silence.note) == ("images-backlog", "resizer redeploy")
        assert any("rule images-backlog silenced for" in t for t in toasts(app))
        await until(pilot, lambda: "silenced: images-backlog" in text_of(
            app.screen.query_one("#alerts-summary", Static)))  # fmt: skip

        await pilot.press("escape")
        assert app.screen is app.dashboard


async def test_the_alerts_screen_says_how_to_define_rules_when_there_are_none(
    db_path: Path,
) -> None:
    app = ConsoleApp(build_engine(db_path, workers=0))
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        await pilot.press("A")
        await settle(pilot)
        await until(pilot, lambda: isinstance(app.screen, AlertsScreen) and app.screen.loaded)
        assert "No alerts firing" in text_of(app.screen.query_one("#alerts-empty", Static))
        await pilot.press("a")
        assert any("cannot acknowledge: no alert is selected" in t for t in toasts(app))
