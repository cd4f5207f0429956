"""Marks in the queue table and freezing it (issue 17, items 2 and 8): space marks rows,
``v`` the rows on screen, ``V`` every task matching the tab and filter (not only the
loaded window); the count shows in the title and the header; esc clears the marks
first, the filter second; ``c``/``r``/``+``/``-`` act on the marked tasks after a
confirmation saying how many. ``z`` freezes the table; the dashboard stays live under
dialogs."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from console.app import ConsoleApp
from console.screens.confirm import ConfirmScreen
from console.screens.help import HelpScreen
from engine import Engine, TaskRecord, TaskState

from .console_helpers import build_engine, bulk_queue, screen_text, settle, started, toasts, until
from .test_console_read_only import read_only_console, store_summary


def marked(app: ConsoleApp) -> int:
    return len(app.queue.table.marks)


async def test_mark_three_rows_and_cancel_them(db_path: Path) -> None:
    engine = build_engine(db_path)
    app = ConsoleApp(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        ids = await engine.enqueue_many([("images.resize", {"job_id": f"j{i}"}) for i in range(6)])
        app.refresh_tick()
        await settle(pilot)
        # Given three rows marked with space (the cursor moves down after each)
        await pilot.press("space", "space", "space")
        await settle(pilot)
        assert marked(app) == 3
        assert "Queue · 3 marked" in screen_text(app)
        assert "● 3 marked" in screen_text(app).splitlines()[0]  # the header too
        # When c: a confirmation says how many; y cancels exactly those
        await pilot.press("c")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        assert "Cancel 3 marked tasks?" in screen_text(app)
        await pilot.press("y")
        await until(pilot, lambda: marked(app) == 0)
        await settle(pilot)
        states = [(await engine.get(i)).state for i in ids]
        assert states.count(TaskState.CANCELLED) == 3
        assert states.count(TaskState.QUEUED) == 3
        assert "3 marked tasks cancelled" in toasts(app)[-1]
        # Marking them again and retrying: one bulk operation; the queued one is skipped
        await pilot.press("6", "home", "space", "space", "space")  # cancelled tab: 3 rows
        await settle(pilot)
        assert marked(app) == 3
        await pilot.press("1", "home", "space", "r")  # plus a queued one
        await settle(pilot)
        assert "Retry 4 marked tasks?" in screen_text(app)
        await pilot.press("y")
        await until(pilot, lambda: marked(app) == 0)
        await settle(pilot)
        assert "3 marked tasks queued again; 1 skipped (1 queued: only failed" in toasts(app)[-1]
        ops = await engine.ops.list()
        assert [o.action for o in ops] == ["retry", "cancel"]  # one operation per action
        assert ops[0].changed == 3 and ops[0].skipped == 1
        assert (await engine.counts())[TaskState.QUEUED] == 6
        await pilot.press("escape")  # esc clears the marks
        await settle(pilot)
        assert marked(app) == 0


async def test_mark_all_matching_beyond_the_loaded_window(db_path: Path) -> None:
    engine = build_engine(db_path)
    async with engine:  # the store, created
        pass
    bulk_queue(db_path, 50_000)
    bulk_queue(db_path, 120, handler="reports.build", queue="reports")
    app = ConsoleApp(build_engine(db_path))
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        assert app.queue.table.total == 50_120
        # v marks the rows on screen only
        await pilot.press("v")
        await settle(pilot)
        on_screen = marked(app)
        assert 0 < on_screen < 100
        await pilot.press("escape")
        await settle(pilot)
        assert marked(app) == 0
        # V marks every queued task, far more than the table has loaded
        await pilot.press("V")
        await until(pilot, lambda: marked(app) == 50_120, timeout=30)
        await settle(pilot)
        assert "50,120 queued tasks marked" in " ".join(toasts(app))
        assert "Queue · 50,120 marked" in screen_text(app)
        await pilot.press("escape")
        await settle(pilot)
        # under the query, only the tasks it matches: then + raises exactly those
        with sqlite3.connect(db_path) as conn:  # none at 9 yet, so that every one can rise
            conn.execute("UPDATE tasks SET priority = priority % 9")
        resize_before = priorities(db_path, "images.resize")
        reports_before = priorities(db_path, "reports.build")
        await pilot.press("slash", *"handler=images.resize AND state=queued", "enter")
        await settle(pilot)
        await pilot.press("V")
        await until(pilot, lambda: marked(app) == 50_000, timeout=30)
        await settle(pilot)
        assert "50,000 queued tasks matching the filter marked" in " ".join(toasts(app))
        await pilot.press("plus")
        await settle(pilot)
        assert "Raise the priority of 50,000 marked tasks?" in screen_text(app)
        await pilot.press("y")
        await until(pilot, lambda: marked(app) == 0, timeout=60)
        await settle(pilot)
        assert "operation 1: 50,000 marked tasks raised" in toasts(app)[-1]
        raised = [(p + 1, n) for p, n in resize_before]
        assert priorities(db_path, "images.resize") == raised  # every match, one up
        assert priorities(db_path, "reports.build") == reports_before  # no other
        (op,) = await app.engine.ops.list()
        assert (op.title, op.total, op.changed, op.skipped) == (
            "reprioritize → +1",
            50_000,
            50_000,
            0,
        )
        # esc: the marks first, then the filter
        await pilot.press("space")
        await settle(pilot)
        await pilot.press("escape")
        await settle(pilot)
        assert marked(app) == 0 and app.queue.query_filter.active
        await pilot.press("escape")
        await settle(pilot)
        assert not app.queue.query_filter.active


async def test_more_matching_than_v_may_mark_acts_on_the_query(db_path: Path) -> None:
    engine = build_engine(db_path)
    async with engine:  # the store, created
        pass
    bulk_queue(db_path, 250)
    bulk_queue(db_path, 40, handler="reports.build", queue="reports")
    app = ConsoleApp(build_engine(db_path))
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        app.marks.limit = 100  # V marks at most 100 here (100,000 by default)
        await pilot.press("slash", *"handler:images.resize", "enter")
        await settle(pilot)
        await pilot.press("V")
        await until(pilot, lambda: marked(app) == 100)
        await settle(pilot)
        assert "the first 100; c/r/+/- act on all that match" in toasts(app)[-1]
        await pilot.press("c")
        await settle(pilot)
        shown = " ".join(screen_text(app).replace("│", " ").split())  # the question wraps
        assert "Cancel every queued task matching handler:images.resize?" in shown
        assert "(more than 100)" in shown
        await pilot.press("y")
        await until(pilot, lambda: marked(app) == 0, timeout=30)
        await settle(pilot)
        assert "250 marked tasks cancelled" in toasts(app)[-1]
        counts = await app.engine.counts()
        assert (counts[TaskState.CANCELLED], counts[TaskState.QUEUED]) == (250, 40)
        (op,) = await app.engine.ops.list()
        assert op.selection["where"] == "handler:images.resize" and op.total == 250
        # a mark changed after V: the action is on the marks only
        await pilot.press("escape")  # the filter
        await settle(pilot)
        app.marks.limit = 10
        await pilot.press("V")
        await until(pilot, lambda: marked(app) == 10)
        await pilot.press("home", "space")  # one unmarked
        await settle(pilot)
        await pilot.press("c")
        await settle(pilot)
        assert "Cancel 9 marked tasks?" in screen_text(app)
        await pilot.press("y")
        await until(pilot, lambda: marked(app) == 0, timeout=30)
        assert (await app.engine.counts())[TaskState.QUEUED] == 31


def priorities(db: Path, handler: str) -> list[tuple[int, int]]:
    """How many tasks of ``handler`` have each priority."""
    with sqlite3.connect(db) as conn:
        query = "SELECT priority, count(*) FROM tasks WHERE handler = ? GROUP BY priority"
        return sorted(conn.execute(query, (handler,)).fetchall())


async def engine_tasks(engine: Engine, handler: str) -> list[TaskRecord]:
    return list(await engine.tasks("queued", handler=handler, limit=1000))


async def test_freeze_keeps_the_table_and_the_dashboard_is_live_under_dialogs(
    db_path: Path,
) -> None:
    engine = build_engine(db_path)
    app = ConsoleApp(engine, refresh_hz=10)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        await engine.enqueue("images.resize", {"job_id": "a"})
        await until(pilot, lambda: app.queue.table.total == 1)
        # z freezes the table: new tasks do not show (the tab counts do) until z again
        await pilot.press("z")
        await settle(pilot)
        assert "Queue · FROZEN (z)" in screen_text(app)
        await engine.enqueue_many([("images.resize", {"job_id": f"b{i}"}) for i in range(3)])
        await until(pilot, lambda: "Queued 4" in screen_text(app))
        assert app.queue.table.total == 1
        await pilot.press("z")
        await until(pilot, lambda: app.queue.table.total == 4)
        assert "FROZEN" not in screen_text(app)
        # under the help screen and a confirmation the dashboard keeps refreshing
        await pilot.press("question_mark")
        await settle(pilot)
        assert isinstance(app.screen, HelpScreen)
        await engine.enqueue("images.resize", {"job_id": "c"})
        await until(pilot, lambda: app.queue.table.total == 5)
        await pilot.press("escape", "space", "c")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        await engine.enqueue("images.resize", {"job_id": "d"})
        await until(pilot, lambda: app.queue.table.total == 6)
        await pilot.press("n")


async def test_a_read_only_console_marks_but_does_not_act(db_path: Path) -> None:
    engine = build_engine(db_path)
    async with engine:
        await engine.enqueue_many([("images.resize", {"job_id": f"j{i}"}) for i in range(4)])
    app = read_only_console(str(db_path))
    async with app.run_test(size=(100, 30)) as pilot:
        await started(pilot)
        await pilot.press("space", "V")
        await until(pilot, lambda: marked(app) == 4)
        for key in ("c", "r", "plus", "minus"):
            await pilot.press(key)
            await settle(pilot)
            assert app.screen is app.dashboard  # no confirmation: refused at once
            assert toasts(app)[-1].startswith("read-only console:"), key
    assert (await store_summary(db_path))["counts"][TaskState.QUEUED] == 4
