"""The console driven by Textual's pilot, on a real engine and a temporary store: every
key changes the engine as it says, and the screen shows it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.widgets import Footer, Input, Select, Static, Switch, Tab
from textual.widgets._footer import FooterKey

from console.app import ConsoleApp
from console.panels.bottlenecks import BottlenecksPanel
from console.panels.events import EventsPanel
from console.panels.task_table import TaskTable
from console.screens.confirm import ConfirmScreen
from console.screens.enqueue import EnqueueScreen, PayloadArea, check_form
from console.screens.failed import FailedScreen
from console.screens.help import HelpScreen
from console.screens.queues import QueuesScreen
from console.screens.quit import QuitScreen
from console.screens.settings import SettingsScreen
from console.screens.task_detail import TaskDetailScreen
from console.screens.workers import WorkerCountScreen
from engine import Engine, TaskState

from .console_helpers import build_engine, open_failed, settle, started, text_of, toasts


@pytest.fixture
def engine(db_path: Path) -> Engine:
    return build_engine(db_path, workers=0)


async def filled(engine: Engine) -> list[str]:
    """Queued tasks in a known order: ids 1..6, priorities 5,5,9,2,5,5."""
    return await engine.enqueue_many(
        [
            ("images.resize", {"job_id": f"j{i}"}, {"priority": p})
            for i, p in enumerate([5, 5, 9, 2, 5, 5], start=1)
        ]
    )


def table(app: ConsoleApp) -> TaskTable:
    return app.query_one("#queue TaskTable", TaskTable)


async def test_starts_the_engine_with_the_queue_focused_on_the_first_row(engine: Engine) -> None:
    app = ConsoleApp(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        ids = await filled(engine)
        app.refresh_tick()
        await settle(pilot)
        assert isinstance(app.focused, TaskTable)
        assert (
            table(app).selected is not None and table(app).selected.id == ids[2]
        )  # priority 9 first
        assert "Queued 6" in str(app.query_one("#tab-queued", Tab).label)
        await pilot.press("down")
        assert table(app).selected.id == ids[0]
    assert not engine.running  # the app stopped what it started


async def test_enqueue_form_enqueues_the_fields_and_selects_the_new_task(engine: Engine) -> None:
    app = ConsoleApp(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        await pilot.press("e")
        assert isinstance(app.screen, EnqueueScreen)
        form = app.screen
        form.query_one("#handler", Select).value = "images.resize"
        form.query_one(PayloadArea).load_text(json.dumps({"job_id": "from-form", "width": 320}))
        form.query_one("#priority", Input).value = "high"
        form.query_one("#queue", Input).value = "thumbs"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert not isinstance(app.screen, EnqueueScreen)
        page = await engine.tasks(state="queued")
        [task] = page
        assert (task.payload, task.priority, task.queue) == (
            {"job_id": "from-form", "width": 320},
            7,
            "thumbs",
        )
        await settle(pilot)
        assert table(app).selected is not None and table(app).selected.id == task.id
        assert f"task {task.id} enqueued" in toasts(app)


@pytest.mark.parametrize(
    ("payload", "priority", "where", "message"),
    [
        ('{"job_id": "a",\n  "width": }', "", "#payload-error", "line 2, column 12"),
        ('{"job_id": "a", "height": 3}', "", "#payload-error", "unexpected 'height'"),
        ("[1, 2]", "", "#payload-error", "must be a JSON object"),
        ('{"job_id": "a"}', "urgent", "#options-error", "priority must be an integer from 0"),
    ],
)
async def test_invalid_form_input_keeps_the_form_open_with_the_error(
    engine: Engine, payload: str, priority: str, where: str, message: str
) -> None:
    app = ConsoleApp(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        await pilot.press("e")
        form = app.screen
        form.query_one(PayloadArea).load_text(payload)
        form.query_one("#priority", Input).value = priority
        await pilot.pause()
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, EnqueueScreen)
        assert message in text_of(form.query_one(where, Static))
        assert (await engine.tasks()) == []


def test_form_check_is_plain_logic() -> None:
    engine = build_engine(Path("/nonexistent/never-opened.db"))
    handler = engine.registry.get("images.resize")
    ok = check_form(handler, '{"job_id": "x"}', "9", "", "2.5", 1000)
    assert ok.ok and ok.options == {"priority": 9, "delay": 2.5}
    big = check_form(handler, "x" * 2000, "", "", "", 1000)
    assert big.errors["payload"].startswith("payload is 2,000 bytes; the limit is 1,000")
    bad = check_form(handler, "{}", "", "no spaces!", "soon", 1000)
    assert "missing 'job_id'" in bad.errors["payload"]
    assert "not allowed" in bad.errors["queue"] and "number of seconds" in bad.errors["delay"]


async def test_cancel_and_retry_keys(engine: Engine) -> None:
    app = ConsoleApp(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        ids = await filled(engine)
        app.refresh_tick()
        await settle(pilot)
        await pilot.press("c")
        await settle(pilot)
        assert (await engine.get(ids[2])).state == TaskState.CANCELLED
        assert any("cancelled (was queued)" in t for t in toasts(app))
        # a refusal says why
        await pilot.press("6")  # the cancelled tab
        await settle(pilot)
        assert table(app).selected is not None and table(app).selected.id == ids[2]
        await pilot.press("c")
        await settle(pilot)
        assert any("cannot cancel" in t and "already cancelled" in t for t in toasts(app))
        await pilot.press("r")
        await settle(pilot)
        assert (await engine.get(ids[2])).state == TaskState.QUEUED
        # the action is in the events tail
        app.refresh_tick()
        await settle(pilot)
        lines = "\n".join(str(line) for line in app.query_one(EventsPanel).lines)
        assert "cancelled" in lines


async def test_priority_keys_follow_the_task_and_clamp_at_9(engine: Engine) -> None:
    app = ConsoleApp(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        ids = await filled(engine)
        app.refresh_tick()
        await settle(pilot)
        await pilot.press("end")  # the priority-2 task, last in line
        await settle(pilot)
        assert table(app).selected.id == ids[3]
        await pilot.press("plus", "plus", "plus")
        await settle(pilot)
        assert (await engine.get(ids[3])).priority == 5
        for _ in range(8):
            await pilot.press("plus")
        await settle(pilot)
        assert (await engine.get(ids[3])).priority == 9
        assert any("already at priority 9 (the highest)" in t for t in toasts(app))
        app.refresh_tick()
        await settle(pilot)
        assert table(app).selected.id == ids[3]  # the cursor followed it up the list
        assert table(app).cursor <= 1
        await pilot.press("minus")
        await settle(pilot)
        assert (await engine.get(ids[3])).priority == 8


async def test_worker_keys_and_dialog(engine: Engine) -> None:
    app = ConsoleApp(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        await pilot.press("right_square_bracket", "right_square_bracket")
        await settle(pilot)
        assert engine.worker_count == 2
        await pilot.press("left_square_bracket", "left_square_bracket", "left_square_bracket")
        await settle(pilot)
        assert engine.worker_count == 0
        assert any("workers already at 0" in t for t in toasts(app))
        await pilot.press("w")
        assert isinstance(app.screen, WorkerCountScreen)
        box = app.screen.query_one("#count", Input)
        box.value = "999"
        await pilot.press("enter")
        assert isinstance(app.screen, WorkerCountScreen)
        assert "a whole number from 0 to 256" in text_of(app.screen.query_one("#count-error"))
        box.value = "5"
        await pilot.press("enter")
        await settle(pilot)
        assert engine.worker_count == 5
        assert "Workers · 0/5 busy" in str(app.query_one("#workers").border_title)


async def test_pause_and_resume_a_queue(engine: Engine) -> None:
    app = ConsoleApp(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        await filled(engine)
        app.refresh_tick()
        await settle(pilot)  # the selected task is in "images"
        await pilot.press("p")
        assert isinstance(app.screen, QueuesScreen)
        await pilot.press("enter")
        await settle(pilot)
        assert "images" in engine.snapshot().paused_queues
        await pilot.press("enter")
        await settle(pilot)
        assert "images" not in engine.snapshot().paused_queues
        assert any("queue images resumed" in t for t in toasts(app))
        await pilot.press("escape")


async def test_autoscale_key_toggles_it(engine: Engine) -> None:
    app = ConsoleApp(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        await pilot.press("a")
        await settle(pilot)
        assert engine.settings.autoscale
        app.refresh_tick()
        assert "autoscale on" in text_of(app.query_one("#header"))
        await pilot.press("a")
        await settle(pilot)
        assert not engine.settings.autoscale


async def test_settings_apply_all_or_nothing(engine: Engine) -> None:
    app = ConsoleApp(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        await pilot.press("s")
        screen = app.screen
        assert isinstance(screen, SettingsScreen)
        screen.query_one("#in-result_ttl", Input).value = "600"
        screen.query_one("#in-lease_ttl", Input).value = "-3"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, SettingsScreen)
        assert "must be from 0.5 to 86400 s" in text_of(screen.query_one("#err-lease_ttl"))
        assert engine.settings.result_ttl == 86400  # nothing changed
        screen.query_one("#in-lease_ttl", Input).value = "20"
        screen.query_one("#in-autoscale", Switch).value = True
        screen.query_one("#in-console_refresh_hz", Input).value = "4"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert not isinstance(app.screen, SettingsScreen)
        assert (engine.settings.result_ttl, engine.settings.lease_ttl) == (600, 20)
        assert engine.settings.autoscale and app.refresh_hz == 4


async def test_task_detail_shows_payload_error_and_timeline(db_path: Path) -> None:
    engine = build_engine(db_path, workers=1)
    app = ConsoleApp(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        tid = await engine.enqueue("mail.send", {"to": "ada@example.com"})
        await engine.wait(tid, timeout=5)
        await pilot.press("5")  # failed tab
        app.refresh_tick()
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, TaskDetailScreen)
        text = text_of(app.screen.query_one("#detail"))
        assert "ada@example.com" in text
        assert "ConnectionError: smtp refused ada@example.com" in text and "Traceback" in text
        assert "running" in text and "failed" in text  # the timeline
        await pilot.press("r")
        await settle(pilot)
        assert (await engine.wait(tid, timeout=5)).attempts == 2
        await pilot.press("escape")
        assert not isinstance(app.screen, TaskDetailScreen)


async def test_failed_screen_retries_and_purges_after_asking(db_path: Path) -> None:
    engine = build_engine(db_path, workers=2)
    app = ConsoleApp(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        ids = await engine.enqueue_many([("mail.send", {"to": f"u{i}@x"}) for i in range(4)])
        await engine.drain(timeout=10)
        await engine.set_workers(0)
        await open_failed(pilot)
        assert "4 failed" in text_of(app.screen.query_one("#failed-summary"))
        # the dashboard's keys are not offered here (they act on the dashboard's table)
        shown = {key.description for key in app.screen.query_one(Footer).query(FooterKey)}
        assert {"Retry", "Retry all shown", "Purge all shown"} <= shown
        assert not shown & {"Cancel", "Enqueue", "Settings", "Priority", "Workers"}, shown
        await pilot.press("c", "plus")
        await settle(pilot)
        assert engine.snapshot().counts[TaskState.FAILED] == 4
        await pilot.press("r")  # retry the selected one
        await settle(pilot)
        assert engine.snapshot().counts[TaskState.QUEUED] == 1
        await pilot.press("R")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")  # declined: nothing changes
        await settle(pilot)
        assert engine.snapshot().counts[TaskState.FAILED] == 3
        await pilot.press("R")
        await pilot.press("y")
        await settle(pilot)
        assert engine.snapshot().counts[TaskState.FAILED] == 0
        assert engine.snapshot().counts[TaskState.QUEUED] == 4
        await engine.cancel(ids[0])
        await pilot.press("2")  # the cancelled tab
        await settle(pilot)
        await pilot.press("P", "enter")  # purge, confirmed with enter
        await settle(pilot)
        with pytest.raises(LookupError):
            await engine.get(ids[0])
        await pilot.press("escape")
        assert not isinstance(app.screen, FailedScreen)


async def test_filter_by_handler_and_text(engine: Engine) -> None:
    app = ConsoleApp(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        await filled(engine)
        await engine.enqueue("reports.build", {"day": "mon"})
        app.refresh_tick()
        await settle(pilot)
        assert table(app).total == 7
        await pilot.press("slash")
        assert isinstance(app.focused, Input)
        await pilot.press(*"handler:reports.build", "enter")
        await settle(pilot)
        assert table(app).total == 1 and table(app).selected.handler == "reports.build"
        await pilot.press("escape")
        await settle(pilot)
        assert table(app).total == 7
        await pilot.press("slash", *"resi", "enter")
        await settle(pilot)
        assert table(app).total == 6


async def test_help_lists_every_key(engine: Engine) -> None:
    app = ConsoleApp(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = "".join(text_of(s) for s in app.screen.query(Static))
        for description in (
            "Enqueue a task",
            "Cancel the selected task",
            "Raise the selected task's priority",
            "Lower the selected task's priority",
            "One worker more",
            "One worker less",
            "Set the worker count",
            "Change runtime settings",
            "Pause or resume a queue",
            "Retry the selected failed or cancelled task",
            "Autoscaler on or off",
            "Failed and cancelled tasks",
            "Filter by handler",
            "Quit: finish running tasks or stop now",
            "Open the task",
            "Apply suggestion",
        ):
            assert description in text, description
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_command_palette_runs_actions(engine: Engine) -> None:
    app = ConsoleApp(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        await pilot.press("ctrl+p")
        await pilot.press(*"Settings")
        await pilot.pause(0.3)  # the palette searches asynchronously
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, SettingsScreen)


async def test_apply_a_bottleneck_suggestion_with_x(db_path: Path) -> None:
    # a slow disk on the test machine must not add a "store is slow" finding on top
    engine = build_engine(db_path, store_latency_threshold=60.0)
    app = ConsoleApp(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        await filled(engine)
        await engine.pause("images")
        for _ in range(60):  # the monitor ticks once a second
            app.refresh_tick()
            await settle(pilot)
            if app.query_one(BottlenecksPanel).findings:
                break
            await pilot.pause(0.1)
        panel = app.query_one(BottlenecksPanel)
        finding = panel.selected
        assert finding is not None and finding.action == ("resume", {"queue": "images"})
        assert panel.border_subtitle == "x: apply the suggestion"
        await pilot.press("x")
        await settle(pilot)
        assert "images" not in engine.snapshot().paused_queues
        assert any("applied: queue images resumed" in t for t in toasts(app))


async def test_quit_dialog_stays_on_escape_and_stops_now_on_s(db_path: Path) -> None:
    engine = build_engine(db_path, workers=1)
    app = ConsoleApp(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        await pilot.press("q")
        assert isinstance(app.screen, QuitScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, QuitScreen) and engine.running
        await pilot.press("q", "s")
        await settle(pilot)
    assert not engine.running and app.return_code == 0


async def test_terminal_too_small_notice(engine: Engine) -> None:
    app = ConsoleApp(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        await pilot.resize_terminal(79, 24)
        await pilot.pause()
        notice = app.query_one("#too-small")
        assert notice.display
        assert "Terminal too small: 79×24" in text_of(app.query_one("#too-small-text"))
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        assert not notice.display
        # at the smallest supported size every footer key is fully on screen
        await settle(pilot)
        keys = list(app.dashboard.query_one(Footer).query(FooterKey))
        assert {key.description for key in keys} >= {"Help", "Enqueue", "Quit"}
        assert all(key.region.right <= 80 for key in keys), [
            (key.description, key.region) for key in keys
        ]
        assert not any(key.has_class("-command-palette") for key in keys)
