"""The audit trail from the console: each steering key leaves one entry by this user
through the ``console``, with the note given in a dialog; the Audit screen (U) lists
them; the task detail's timeline shows the actions on the task."""

from __future__ import annotations

import getpass
from pathlib import Path

import pytest
from textual.widgets import Input, Select

from console.app import ConsoleApp
from console.screens.audit import AuditScreen, AuditTable
from console.screens.confirm import ConfirmScreen
from console.screens.enqueue import PayloadArea
from console.screens.task_detail import TaskDetailScreen
from engine import AuditEntry, Engine, InvalidTransition, TaskState

from .console_helpers import build_engine, open_failed, settle, started, text_of, until


async def actions(engine: Engine) -> list[AuditEntry]:
    return list(reversed(await engine.audit.entries()))


async def test_each_key_leaves_one_entry_by_the_console_with_the_dialog_note(
    db_path: Path,
) -> None:
    engine = build_engine(db_path, workers=0)  # built as "api": the console records as itself
    app = ConsoleApp(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        ids = await engine.enqueue_many([("images.resize", {"job_id": f"j{i}"}) for i in range(3)])
        app.refresh_tick()
        await settle(pilot)
        await pilot.press("plus")
        await settle(pilot)
        await pilot.press("c")
        await settle(pilot)
        await pilot.press("right_square_bracket")
        await settle(pilot)
        await pilot.press("p")  # the queues dialog: enter pauses the highlighted queue
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("escape")
        await pilot.press("P")  # pause everything, with a note
        await settle(pilot)
        await pilot.press(*"disk full")
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("P", "enter")  # and resume
        await settle(pilot)
        done = [e.action for e in await actions(engine)]
        assert done == [
            "reprioritize", "cancel", "set_workers", "pause", "pause_all", "resume_all",
        ]  # fmt: skip
        entries = await actions(engine)
        for entry in entries:
            assert entry.interface == "console" and entry.user == getpass.getuser(), entry
            assert entry.ok, entry
        selected = entries[0].task_id
        assert selected in ids and [e.task_id for e in entries[:2]] == [selected] * 2
        assert entries[3].target.startswith("queue ")
        assert entries[4].note == "disk full"

        # a bulk action asks first; its note field (tab) goes with it
        await engine.enqueue_many([("mail.send", {"to": f"u{i}@x"}) for i in range(2)])
        await engine.drain(timeout=10)  # both fail (the handler refuses them)
        await engine.set_workers(0)
        await open_failed(pilot)
        await pilot.press("R")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("tab")
        assert isinstance(app.focused, Input)
        await pilot.press(*"INC-9 retry them")
        await pilot.press("enter")
        await settle(pilot)
        await until(pilot, lambda: engine.snapshot().counts[TaskState.FAILED] == 0)
        last = (await engine.audit.entries(limit=1))[0]
        assert (last.action, last.note, last.interface) == (
            "retry_all",
            "INC-9 retry them",
            "console",
        )


async def test_the_audit_screen_lists_the_trail_and_filters_it(db_path: Path) -> None:
    engine = build_engine(db_path, workers=0)
    app = ConsoleApp(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        task = await engine.enqueue("images.resize", {"job_id": "a"})
        with engine.audit.note("wrong size"):
            await engine.cancel(task)
        with pytest.raises(InvalidTransition):
            await engine.cancel(task)  # already cancelled: refused, and recorded
        await pilot.press("U")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, AuditScreen)
        await until(pilot, lambda: screen.table.row_count == 2)
        rows = [[str(c) for c in screen.table.get_row_at(i)] for i in range(2)]
        assert rows[0][3] == "cancel" and rows[0][5].startswith("refused: InvalidTransition")
        assert rows[1][3:] == ["cancel", f"task {task}", "cancelled (was queued)", "wrong size"]
        assert rows[1][1] == engine.audit.actor.who and rows[1][2] == "console"
        detail = text_of(screen.query_one("#audit-entry"))
        assert "refused: InvalidTransition" in detail and "console, pid" in detail
        assert "2 entries" in text_of(screen.query_one("#audit-summary"))
        await pilot.press("x")  # refused only
        await until(pilot, lambda: screen.table.row_count == 1)
        await pilot.press("x", "m")  # all again; then only mine (still both)
        await until(pilot, lambda: screen.table.row_count == 2)
        assert "mine" in text_of(screen.query_one("#audit-summary"))
        await pilot.press("escape")
        assert not isinstance(app.screen, AuditScreen)

        await app.push_screen(TaskDetailScreen(engine, task))
        await settle(pilot)
        await until(pilot, lambda: "» cancel" in text_of(app.screen.query_one("#detail")))
        shown = text_of(app.screen.query_one("#detail"))
        assert "note: wrong size" in shown and "(console)" in shown


async def test_an_empty_trail_says_what_it_will_hold(db_path: Path) -> None:
    engine = build_engine(db_path, workers=0)
    app = ConsoleApp(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        await pilot.press("U")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, AuditScreen)
        await until(pilot, lambda: screen.loaded)
        assert not screen.query_one(AuditTable).display
        assert "No operator actions recorded yet" in text_of(screen.query_one("#audit-empty"))


async def test_the_other_steering_keys_are_recorded_too(db_path: Path) -> None:
    engine = build_engine(db_path, workers=0)

    @engine.periodic(every=300, name="reports.hourly", queue="reports")
    async def hourly() -> str:
        return "ok"

    app = ConsoleApp(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        await pilot.press("a")  # the autoscaler on: a saved setting
        await settle(pilot)
        await pilot.press("w")
        app.screen.query_one("#count", Input).value = "2"
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("t")
        await settle(pilot)
        await until(pilot, lambda: app.screen.query_one("ScheduleTable").row_count > 0)
        await pilot.press("p")  # pause the schedule
        await settle(pilot)
        await pilot.press("n")  # one run now
        await settle(pilot)
        await pilot.press("escape")
        await settle(pilot)
        await pilot.press("e")  # the enqueue form: an operator's enqueue
        await settle(pilot)
        form = app.screen
        form.query_one("#handler", Select).value = "images.resize"
        await settle(pilot)
        form.query_one(PayloadArea).load_text('{"job_id": "by-hand"}')
        await settle(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)
        entries = await actions(engine)
        assert [e.action for e in entries] == [
            "update_settings", "set_workers", "pause_schedule", "run_schedule", "enqueue",
        ]  # fmt: skip
        assert entries[-1].target.endswith("(images.resize)") and entries[-1].task_id
        assert entries[0].target == "settings autoscale=True"
        assert entries[1].outcome == "workers 0 → 2"
        assert [e.target for e in entries[2:4]] == ["schedule reports.hourly"] * 2
        assert {e.interface for e in entries} == {"console"}
