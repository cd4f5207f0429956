"""The console's Operations screen (O): bulk operations with progress and result; k
aborts a running one midway and the screen shows its partial result. The edit form
(E in task detail): a failed task's payload fixed and saved with retry runs with the
new payload; a payload the handler refuses stays in the form with enqueue's error."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from textual.widgets import Input, Static

from console.app import ConsoleApp
from console.screens.edit import EditScreen
from console.screens.enqueue import PayloadArea
from console.screens.help import HelpScreen
from console.screens.operations import OperationsScreen
from console.screens.task_detail import TaskDetailScreen
from engine import TaskState

from .console_helpers import build_engine, settle, started, text_of, toasts, until


async def test_the_operations_screen_shows_progress_and_k_aborts_midway(db_path: Path) -> None:
    engine = build_engine(db_path, workers=0)
    app = ConsoleApp(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        await engine.enqueue_many([("images.resize", {"job_id": f"j{i}"}) for i in range(4000)])
        done = await engine.ops.wait(
            (await engine.ops.start("reprioritize", ids=["1", "2"], priority=9)).id
        )
        engine.ops.batch_size = 1  # 4,000 transactions: still running when k is pressed
        running = await engine.ops.start("cancel", handler="images.resize", note="INC-3")
        await pilot.press("O")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, OperationsScreen)
        await until(pilot, lambda: len(screen.ops) == 2)
        assert [o.id for o in screen.ops] == [running.id, done.id]
        table = screen.table
        assert table.row_count == 2
        await pilot.press("k")  # the newest (running) one is selected
        await settle(pilot)
        stopped = await engine.ops.get(running.id)
        assert stopped.state == "aborted"
        assert 0 < stopped.done < 4000 and stopped.changed == stopped.done
        assert (await engine.counts("images"))[TaskState.CANCELLED] == stopped.changed
        assert any(f"operation {running.id} aborted" in t for t in toasts(app))
        screen.load()
        await settle(pilot)
        entry = text_of(screen.query_one("#ops-entry", Static))
        assert f"operation {running.id} · cancel on handler=images.resize" in entry
        assert f"{stopped.changed:,} changed, 0 skipped" in entry and "note: INC-3" in entry
        await pilot.press("k")  # already finished: said so, nothing changes
        await settle(pilot)
        assert f"operation {running.id} is already aborted" in toasts(app)[-1]
        await pilot.press("down")
        await settle(pilot)
        entry = text_of(screen.query_one("#ops-entry", Static))
        assert "reprioritize → 9 on 2 ids" in entry and "2 changed, 0 skipped" in entry
        await pilot.press("escape")
        assert not isinstance(app.screen, OperationsScreen)


async def test_edit_a_failed_payload_in_the_form_and_retry(db_path: Path) -> None:
    engine = build_engine(db_path, workers=1)

    @engine.task(name="calc.div", queue="calc", retries=0)
    async def div(a: int, b: int) -> float:
        return a / b

    app = ConsoleApp(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        task = await engine.enqueue("calc.div", {"a": 4, "b": 0})
        assert (await engine.wait(task, timeout=10)).state == TaskState.FAILED
        app.push_screen(TaskDetailScreen(engine, task))
        await settle(pilot)
        await pilot.press("E")
        await settle(pilot)
        form = app.screen
        assert isinstance(form, EditScreen)
        area = form.query_one("#payload", PayloadArea)
        assert area.text == '{\n  "a": 4,\n  "b": 0\n}'
        area.load_text('{"a": 4, "b": "two"}')  # the handler refuses it: enqueue's words
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, EditScreen)
        try:
            await engine.enqueue("calc.div", {"a": 4, "b": "two"})
        except TypeError as exc:
            said = str(exc)
        assert text_of(form.query_one("#payload-error", Static)).strip() == said
        area.load_text('{"a": 4, "b": 2}')
        await pilot.press("ctrl+r")  # save and retry
        await settle(pilot)
        assert isinstance(app.screen, TaskDetailScreen)
        record = await engine.wait(task, timeout=10)
        assert (record.state, record.result, record.payload) == (
            TaskState.SUCCEEDED,
            2.0,
            {"a": 4, "b": 2},
        )
        notes = [e.note or "" for e in record.timeline]
        assert any('{"a":4,"b":0} → {"a":4,"b":2}' in n for n in notes)


async def test_edit_a_scheduled_tasks_due_time_with_a_note_for_the_audit(
    db_path: Path,
) -> None:
    engine = build_engine(db_path, workers=0)
    app = ConsoleApp(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        task = await engine.enqueue("images.resize", {"job_id": "a"}, delay=3600)
        app.push_screen(TaskDetailScreen(engine, task))
        await settle(pilot)
        await until(pilot, lambda: getattr(app.screen, "record", None) is not None)
        await pilot.press("E")
        await settle(pilot)
        form = app.screen
        assert isinstance(form, EditScreen)
        run_at = form.query_one("#run-at", Input)
        assert run_at.value.endswith("+00:00") and not run_at.disabled
        run_at.value = "tomorrow"  # refused in the form, with what is allowed
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, EditScreen)
        said = text_of(form.query_one("#options-error", Static))
        assert "run at must be an ISO 8601 time with a UTC offset" in said
        run_at.value = "2030-01-02T03:04:05+00:00"
        form.query_one("#priority", Input).value = "8"
        form.query_one("#note", Input).value = "INC-12: moved after the window"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, TaskDetailScreen)
        record = await engine.get(task)
        assert (record.state, record.priority) == (TaskState.SCHEDULED, 8)
        assert record.run_at == datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()
        (entry,) = await engine.audit.entries(action="edit")
        assert entry.note == "INC-12: moved after the window" and entry.interface == "console"


async def test_edit_refuses_a_succeeded_task_saying_why(db_path: Path) -> None:
    engine = build_engine(db_path, workers=0)
    app = ConsoleApp(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        task = await engine.enqueue("images.resize", {"job_id": "a"})
        await engine.set_workers(1)
        await engine.wait(task, timeout=10)
        app.push_screen(TaskDetailScreen(engine, task))
        await settle(pilot)
        await until(pilot, lambda: getattr(app.screen, "record", None) is not None)
        await pilot.press("E")
        await settle(pilot)
        assert isinstance(app.screen, TaskDetailScreen)
        assert "only queued, scheduled, failed or cancelled tasks can be edited" in toasts(app)[-1]


async def test_help_lists_the_operations_and_edit_keys(db_path: Path) -> None:
    engine = build_engine(db_path, workers=0)
    app = ConsoleApp(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = "".join(text_of(s) for s in app.screen.query(Static))
        for said in (
            "Bulk operations: progress, results, abort",
            "Bulk operations (O)",
            "Stop the selected operation after its batch",
            "Edit the task (not running): a form",
        ):
            assert said in text, said
