"""The console at 80×24 (issue 17, item 7): a compact layout from 80×24 to below
100×30 — the queue takes the screen, ``g``/``G`` show the other panels one at a time —
where every dashboard key works, the footer fits, and every screen and dialog fits;
the "too small" box only below 80×24."""

from __future__ import annotations

from pathlib import Path

from textual.containers import VerticalScroll
from textual.widget import Widget
from textual.widgets import Footer, Static
from textual.widgets._footer import FooterKey

from console.app import ConsoleApp
from console.keys import DASHBOARD_KEYS
from console.panels.bottlenecks import BottlenecksPanel
from console.panels.task_table import TaskTable
from console.screens.audit import AuditScreen
from console.screens.edit import EditScreen
from console.screens.task_detail import TaskDetailScreen
from engine import Engine, TaskState

from .console_helpers import build_engine, screen_text, settle, started, text_of, until
from .test_console_read_only import SCREENS, action_name, back_to_dashboard, keys_of

SIZE = (80, 24)
#: The compact layout's panels, by the title their border starts with, in ``g`` order.
TITLES = ("Queue", "Workers", "Resources", "Throughput", "Bottlenecks", "Events")


def shown_titles(app: ConsoleApp) -> list[str]:
    """The dashboard panels on screen, by title."""
    board = app.dashboard
    ids = ("queue", "workers", "resources", "throughput", "bottlenecks", "events")
    return [title for title, i in zip(TITLES, ids, strict=True) if board.query_one(f"#{i}").display]


def assert_fits(app: ConsoleApp, where: str) -> None:
    """Everything on the current screen lies inside the terminal, and the footer's keys
    are whole on it."""
    width, height = app.size
    for widget in app.screen.query(Widget):
        if widget.display and widget.region.area and widget.has_class("dialog"):
            region = widget.region
            assert region.x >= 0 and region.y >= 0, (where, widget, region)
            assert region.right <= width and region.bottom <= height, (where, widget, region)
    for key in app.screen.query(FooterKey):
        assert key.region.right <= width, (where, key.description, key.region)


async def tasks(engine: Engine) -> None:
    failed = await engine.enqueue("mail.send", {"to": "ada@example.com"})
    await engine.wait(failed, timeout=5)
    for i in range(30):
        await engine.enqueue("images.resize", {"job_id": f"j{i}"}, delay=600)


async def test_one_panel_at_a_time_and_back_to_the_full_layout(db_path: Path) -> None:
    engine = build_engine(db_path, workers=1)
    app = ConsoleApp(engine)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await tasks(engine)
        app.refresh_tick()
        await settle(pilot)
        # Given 80×24: the queue alone, no "too small" box, a footer that fits
        assert app.board_layout.compact and shown_titles(app) == ["Queue"]
        assert not app.query_one("#too-small").display
        footer = screen_text(app).splitlines()[-1]
        for key in ("? Help", "e Enqueue", "c Cancel", "f Failed", "/ Filter", "g Panel", "q Quit"):
            assert key in footer, (key, footer)
        assert_fits(app, "dashboard")
        # g shows each other panel in turn, G goes back; the panel gets the keys
        for title in (*TITLES[1:], "Queue"):
            await pilot.press("g")
            await settle(pilot)
            assert shown_titles(app) == [title]
            assert f"─ {title}" in screen_text(app), title
        await pilot.press("G")
        await settle(pilot)
        assert shown_titles(app) == ["Events"]
        # a key of the queue table brings the queue back, on its tab
        await pilot.press("2")
        await settle(pilot)
        assert shown_titles(app) == ["Queue"] and app.queue.state == TaskState.SCHEDULED
        assert isinstance(app.focused, TaskTable)
        # at 100×30 every panel shows again, and g is off the footer
        await pilot.resize_terminal(100, 30)
        await settle(pilot)
        assert not app.board_layout.compact and shown_titles(app) == list(TITLES)
        assert "g Panel" not in screen_text(app).splitlines()[-1]
        await pilot.resize_terminal(*SIZE)
        await settle(pilot)
        assert shown_titles(app) == ["Queue"]
        await engine.stop(grace=0)


async def test_every_dashboard_key_works_and_every_screen_fits_at_80x24(db_path: Path) -> None:
    engine = build_engine(db_path, workers=1)
    app = ConsoleApp(engine)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await tasks(engine)
        await pilot.press("2")
        await settle(pilot)
        pressed = []
        bindings = [*DASHBOARD_KEYS, *TaskTable.BINDINGS, *BottlenecksPanel.BINDINGS]
        for key, action in keys_of(bindings):
            if action_name(action) == "quit_dialog":
                continue  # last: it ends the walk
            await pilot.press(key)
            await settle(pilot)
            await pilot.pause(0.1)  # a screen's first read
            assert_fits(app, f"{key} ({type(app.screen).__name__})")
            pressed.append((key, type(app.screen).__name__))
            if action_name(action) in ("cancel", "retry", "priority"):
                assert app.screen is app.dashboard  # no marks: on the selected task
            await back_to_dashboard(pilot)
            await pilot.press("escape")  # marks from space, v, V
            app.board_layout.show_queue(app.dashboard)
        opened = {name for _, name in pressed}
        assert opened >= {
            "SettingsScreen", "EnqueueScreen", "HelpScreen", "AlertsScreen", "AuditScreen",
            "SchedulesScreen", "FailedScreen", "TaskDetailScreen", "QueuesScreen",
            "PauseAllScreen", "WorkerCountScreen",
        }, pressed  # fmt: skip
        # the quit dialog fits too, and quits
        await pilot.press("q")
        await settle(pilot)
        assert_fits(app, "quit")
        assert "Quit Taskdeck?" in screen_text(app)
        await pilot.press("s")
        await until(pilot, lambda: not engine.running, timeout=10)


async def test_every_key_of_every_screen_works_and_fits_at_80x24(db_path: Path) -> None:
    """Each screen the dashboard opens, and task detail's edit form: every key of it
    pressed at 80×24 (in a console that may change things); what opens fits."""
    engine = build_engine(db_path, workers=1)
    app = ConsoleApp(engine)
    screens = [(k, n, c, b) for k, n, c, b, _ in SCREENS]
    screens.append(("U", "AuditScreen", AuditScreen, list(AuditScreen.BINDINGS)))
    screens.append(("E", "EditScreen", EditScreen, list(EditScreen.BINDINGS)))
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await tasks(engine)
        failed = (await engine.tasks("failed", limit=1))[0].id
        for key, name, screen, bindings in screens:
            for binding_key, action in keys_of(bindings):
                if action_name(action) in ("quit", "quit_dialog"):
                    continue
                if name in ("TaskDetailScreen", "EditScreen", "TaskStackScreen"):
                    app.push_screen(TaskDetailScreen(engine, failed))
                    await settle(pilot)
                    await until(pilot, lambda: getattr(app.screen, "record", None) is not None)
                if key and name != "TaskDetailScreen":
                    await pilot.press(key)
                await settle(pilot)
                assert isinstance(app.screen, screen), (name, binding_key, app.screen)
                assert_fits(app, name)
                await pilot.press(binding_key)
                await settle(pilot)
                assert_fits(app, f"{name} {binding_key} ({type(app.screen).__name__})")
                assert engine.running and app.is_running, (name, binding_key)
                await back_to_dashboard(pilot)
        await engine.stop(grace=0)


async def test_a_confirmation_on_marks_and_the_help_fit_at_80x24(db_path: Path) -> None:
    engine = build_engine(db_path, workers=1)
    app = ConsoleApp(engine)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await tasks(engine)
        await pilot.press("2")
        await settle(pilot)
        await pilot.press("space", "space", "c")
        await settle(pilot)
        assert_fits(app, "confirm")
        text = screen_text(app)
        assert "Cancel 2 marked tasks?" in text and "n / esc: no" in text
        await pilot.press("n", "question_mark")
        await settle(pilot)
        assert_fits(app, "help")
        keys = text_of(app.screen.query_one(VerticalScroll).query_one(Static), width=70)
        for line in ("Marks, freeze, panels", "space", "Mark every task on screen", "FROZEN"):
            assert line in keys, line
        await engine.stop(grace=0)


async def test_too_small_only_below_80x24(db_path: Path) -> None:
    app = ConsoleApp(build_engine(db_path))
    async with app.run_test(size=(79, 24)) as pilot:
        await started(pilot)
        assert app.query_one("#too-small").display
        assert "needs at least 80×24" in screen_text(app)
        await pilot.resize_terminal(80, 23)
        await settle(pilot)
        assert app.query_one("#too-small").display
        await pilot.resize_terminal(80, 24)
        await settle(pilot)
        assert not app.query_one("#too-small").display
        assert app.dashboard.query_one(Footer).display
