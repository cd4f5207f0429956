"""The schedules screen (t): lists periodic tasks, pauses and resumes them, runs one now,
opens the last run's task, and says how to define one when there is none."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Footer, Static
from textual.widgets._footer import FooterKey

from console.app import ConsoleApp
from console.screens.help import HelpScreen
from console.screens.schedules import SchedulesScreen, ScheduleTable
from console.screens.task_detail import TaskDetailScreen
from engine import Engine, EventKind, TaskState

from .console_helpers import build_engine, settle, started, text_of, toasts


@pytest.fixture
def engine(db_path: Path) -> Engine:
    engine = build_engine(db_path, workers=0)

    @engine.periodic(every=300, name="reports.hourly", queue="reports")
    async def hourly() -> str:
        return "summed up"

    return engine


def screen_of(app: ConsoleApp) -> SchedulesScreen:
    assert isinstance(app.screen, SchedulesScreen), app.screen
    return app.screen


def row(app: ConsoleApp, name: str) -> dict[str, str]:
    """The schedule's row as shown: column key -> plain text."""
    table = screen_of(app).query_one(ScheduleTable)
    keys = [str(column.key.value) for column in table.ordered_columns]
    return {k: str(v) for k, v in zip(keys, table.get_row(name), strict=True)}


def info(app: ConsoleApp) -> str:
    return text_of(screen_of(app).query_one("#schedule-info", Static))


async def test_t_lists_the_periodic_tasks_and_escape_closes(engine: Engine) -> None:
    app = ConsoleApp(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        shown = {key.description for key in app.dashboard.query_one(Footer).query(FooterKey)}
        assert "Schedules" in shown
        await pilot.press("t")
        await settle(pilot)
        cells = row(app, "reports.hourly")
        assert cells["handler"] == "reports.hourly" and cells["rule"] == "every 5 min"
        assert cells["next"].startswith("in 4m5") or cells["next"] == "in 5m00s", cells
        assert (cells["last"], cells["state"], cells["task"]) == ("never", "–", "–")
        assert "reports.hourly runs reports.hourly on queue reports, every 5 min" in info(app)
        summary = text_of(screen_of(app).query_one("#schedules-summary", Static))
        assert "1 defined · 0 paused · next: reports.hourly in" in summary
        # the dashboard's keys are off here; this screen's own are in the footer
        shown = {key.description for key in screen_of(app).query_one(Footer).query(FooterKey)}
        assert {"Pause/resume", "Run now", "Last run", "Back"} <= shown
        assert not shown & {"Enqueue", "Cancel", "Settings", "Failed"}, shown
        await pilot.press("escape")
        assert app.screen is app.dashboard


async def test_p_pauses_and_resumes_the_selected_schedule(engine: Engine) -> None:
    app = ConsoleApp(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        await pilot.press("t", "p")
        await settle(pilot)
        [schedule] = await engine.schedules()
        assert schedule.paused
        assert row(app, "reports.hourly")["next"] == "paused"
        assert "paused (p resumes it)" in info(app)
        assert "schedule reports.hourly paused: no runs until you resume it (p)" in toasts(app)
        await pilot.press("p")
        await settle(pilot)
        [schedule] = await engine.schedules()
        assert not schedule.paused
        assert row(app, "reports.hourly")["next"].startswith("in ")
        assert "schedule reports.hourly resumed: it runs every 5 min again" in toasts(app)
        # a schedule defined while the screen is open shows up; the cursor stays on its one
        async with engine.events(kinds=[EventKind.SCHEDULE_CHANGED]) as changes:
            engine.add_schedule("images.resize", every=60, payload={"job_id": "t"}, name="a.new")
            await changes.get()
        screen_of(app).load()
        await settle(pilot)
        assert row(app, "a.new")["rule"] == "every 1 min"
        selected = screen_of(app).selected
        assert selected is not None and selected.name == "reports.hourly"


async def test_n_runs_it_now_and_enter_opens_the_runs_task(engine: Engine) -> None:
    app = ConsoleApp(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        await pilot.press("t", "enter")  # it has not run yet: nothing to open
        await settle(pilot)
        assert isinstance(app.screen, SchedulesScreen)
        assert any("has not run yet: no task to open (n runs it now)" in t for t in toasts(app))
        await pilot.press("n")
        await settle(pilot)
        [task] = await engine.tasks()
        assert (task.handler, task.state, task.queue) == ("reports.hourly", "queued", "reports")
        assert (
            f"schedule reports.hourly: task #{task.id} enqueued now "
            "(its next run stays as scheduled)" in toasts(app)
        )
        cells = row(app, "reports.hourly")
        assert (cells["state"], cells["task"]) == ("queued", f"#{task.id}")
        assert cells["last"].endswith("ago") and cells["next"].startswith("in ")
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, TaskDetailScreen) and app.screen.task_id == task.id
        await pilot.press("escape")
        assert isinstance(app.screen, SchedulesScreen)
        await engine.cancel(task.id)
        screen_of(app).load()
        await settle(pilot)
        assert row(app, "reports.hourly")["state"] == TaskState.CANCELLED.value


async def test_no_schedules_says_how_to_define_one(db_path: Path) -> None:
    app = ConsoleApp(build_engine(db_path))
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        await pilot.press("t")
        await settle(pilot)
        screen = screen_of(app)
        empty = screen.query_one("#schedules-empty", Static)
        assert empty.display and not screen.query_one(ScheduleTable).display
        assert "@engine.periodic(every=300)" in text_of(empty)
        await pilot.press("p", "n")
        await settle(pilot)
        refusals = [t for t in toasts(app) if "there are no schedules" in t]
        assert len(refusals) == 2 and "@engine.periodic(every=300)" in refusals[0]
        await pilot.press("escape")
        assert app.screen is app.dashboard


async def test_fits_100x30_and_is_in_help_and_the_palette(engine: Engine) -> None:
    engine.add_schedule(
        "reports.build", cron="0 2 * * *", tz="Europe/Berlin", payload={"day": "today"},
        name="reports.nightly_build_for_every_customer_account",
    )  # fmt: skip
    app = ConsoleApp(engine)
    async with app.run_test(size=(100, 30)) as pilot:
        await started(pilot)
        await pilot.press("ctrl+p", *"Periodic")
        await pilot.pause(0.3)  # the palette searches asynchronously
        await pilot.press("enter")
        await settle(pilot)
        table = screen_of(app).query_one(ScheduleTable)
        assert table.row_count == 2
        assert table.virtual_size.width <= table.scrollable_content_region.width
        cells = row(app, "reports.nightly_build_for_every_customer_account")
        assert cells["name"].endswith("…") and "handler" not in cells  # the line below says
        assert cells["rule"].startswith("cron 0 2 * * *")
        await pilot.press("down")
        assert "runs reports.build on queue reports, cron 0 2 * * * (Europe/Berlin)" in info(app)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = "".join(text_of(s) for s in app.screen.query(Static))
        for description in (
            "Periodic tasks: next/last run, pause, run now",
            "Pause or resume the schedule",
            "Enqueue one run of the schedule now",
            "Open the task of its last run",
        ):
            assert description in text, description
