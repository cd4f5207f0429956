"""Flow control from the console: rate limits, concurrency limits and weights are
settings; the settings screen edits them, all or nothing, and the bottleneck panel
says when one holds a backlog back."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Input

from console.app import ConsoleApp
from console.panels.bottlenecks import BottlenecksPanel
from console.screens.settings import SettingsScreen

from .console_helpers import build_engine, settle, started, text_of, toasts


async def test_settings_screen_sets_rate_limits_concurrency_and_weights(db_path: Path) -> None:
    engine = build_engine(db_path)
    app = ConsoleApp(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        await pilot.press("s")
        screen = app.screen
        assert isinstance(screen, SettingsScreen)
        doc = " ".join(" ".join(text_of(w) for w in screen.query("#settings-list Static")).split())
        for name in ("queue_rate_limits", "handler_rate_limits", "queue_concurrency"):
            assert name in doc
        assert "e.g. 'default=3, bulk=1'" in doc
        screen.query_one("#in-queue_rate_limits", Input).value = "emails=100/m"
        screen.query_one("#in-handler_rate_limits", Input).value = "mail.send=10/s"
        screen.query_one("#in-queue_concurrency", Input).value = "reports=2"
        screen.query_one("#in-queue_weights", Input).value = "images=3, emails=1"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert not isinstance(app.screen, SettingsScreen)
        settings = engine.settings
        assert dict(settings.queue_rate_limits) == {"emails": "100/m"}
        assert dict(settings.handler_rate_limits) == {"mail.send": "10/s"}
        assert dict(settings.queue_concurrency) == {"reports": 2}
        assert dict(settings.queue_weights) == {"emails": 1.0, "images": 3.0}
        assert any("queue_rate_limits=emails=100/m" in t for t in toasts(app))
        flow = engine.flow_limits()
        assert flow is not None and flow.holds("emails", "x") and flow.queue_weights["images"] == 3
        # reopening shows the values as they are stored
        await pilot.press("s")
        screen = app.screen
        assert isinstance(screen, SettingsScreen)
        assert screen.query_one("#in-queue_weights", Input).value == "emails=1, images=3"
        await pilot.press("escape")


async def test_bad_rate_limit_text_changes_nothing_and_says_why(db_path: Path) -> None:
    engine = build_engine(db_path)
    app = ConsoleApp(engine)
    async with app.run_test(size=(100, 30)) as pilot:
        await started(pilot)
        await pilot.press("s")
        screen = app.screen
        assert isinstance(screen, SettingsScreen)
        screen.query_one("#in-queue_rate_limits", Input).value = "emails=ten per minute"
        screen.query_one("#in-queue_weights", Input).value = "bulk=0"
        screen.query_one("#in-queue_concurrency", Input).value = "reports=2"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, SettingsScreen)
        error = text_of(screen.query_one("#err-queue_rate_limits"))
        assert "'ten per minute' is not understood" in error and "'100/m'" in error
        assert "above 0" in text_of(screen.query_one("#err-queue_weights"))
        assert not engine.settings.queue_concurrency  # all or nothing
        assert any("nothing changed" in t for t in toasts(app))


async def test_rate_limited_queue_shows_in_bottlenecks(db_path: Path) -> None:
    engine = build_engine(db_path, workers=2, queue_rate_limits={"images": "1/m"})
    app = ConsoleApp(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        await engine.enqueue_many([("images.resize", {"job_id": f"j{i}"}) for i in range(120)])
        panel = app.query_one(BottlenecksPanel)
        for _ in range(60):  # the monitor ticks once a second
            app.refresh_tick()
            await settle(pilot)
            if any(f.rule == "rate_limited" for f in panel.findings):
                break
            await pilot.pause(0.1)
        finding = next(f for f in panel.findings if f.rule == "rate_limited")
        assert finding.title == "Queue images is rate-limited: 1/m"
        assert "backlog 119" in finding.evidence and "to drain" in finding.evidence
        shown = [str(panel.get_option_at_index(i).prompt) for i in range(panel.option_count)]
        assert any("Queue images is rate-limited: 1/m" in line for line in shown)
