"""The console's why-waiting line (task detail) and the Failures view (F): 300
failures with 3 distinct errors show as 3 groups; retry, purge and show a group."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from console.app import ConsoleApp
from console.panels.queue import QueuePanel
from console.screens.confirm import ConfirmScreen
from console.screens.failed import FailedScreen
from console.screens.failures import FailuresScreen
from console.screens.task_detail import TaskDetailScreen
from engine import Engine, TaskState

from .console_helpers import build_engine, screen_text, settle, started, text_of, toasts, until


def with_uploads(engine: Engine) -> Engine:
    @engine.task(name="upload", queue="uploads", retries=0)
    async def upload(kind: int, n: int) -> None:
        if kind == 0:
            raise ValueError(f"upload {n} failed for 'p{n}.heic': HEIC is not supported")
        if kind == 1:
            raise LookupError(f"user {uuid.uuid4()} not found")
        raise RuntimeError(f"connection 0x{n + 4096:x} reset after {n} ms")

    return engine


async def fail(engine: Engine, count: int) -> list[Any]:
    ids = await engine.enqueue_many([("upload", {"kind": i % 3, "n": i}) for i in range(count)])
    for tid in ids:
        await engine.wait(tid, timeout=30)
    return ids


async def test_task_detail_says_why_a_task_waits(db_path: Path) -> None:
    engine = build_engine(db_path, workers=1)
    app = ConsoleApp(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        await engine.pause("images")
        tid = await engine.enqueue("images.resize", {"job_id": "j1"})
        app.push_screen(TaskDetailScreen(engine, tid))
        await settle(pilot)
        body = app.screen.query_one("#detail")
        await until(pilot, lambda: "why" in text_of(body))
        text = text_of(body)
        assert "queue images is paused by " in text
        assert text.index("why") < text.index("handler")  # next to the state
        await engine.resume("images")
        await engine.wait(tid, timeout=10)
        await until(pilot, lambda: "why" not in text_of(body), timeout=5)


async def test_failures_view_groups_retries_purges_and_shows(db_path: Path) -> None:
    engine = with_uploads(build_engine(db_path, workers=4))
    app = ConsoleApp(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        await fail(engine, 300)
        await pilot.press("F")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, FailuresScreen)
        assert screen.table.row_count == 3
        assert [g.count for g in screen.groups] == [100, 100, 100]
        summary = text_of(screen.query_one("#failures-summary"))
        assert "300 failed tasks in 3 groups" in summary
        rows = [" ".join(map(str, screen.table.get_row_at(i))) for i in range(3)]
        assert any(
            "ValueError: upload <n> failed for '…': HEIC is not supported" in r for r in rows
        )
        assert any("LookupError: user <uuid> not found" in r for r in rows)
        assert "(the newest)" in text_of(screen.query_one("#failures-sample"))

        # r: retry the selected group, after asking (with a note for the audit trail)
        first = screen.selected
        assert first is not None
        await pilot.press("r")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("tab", *"INC-9", "enter")
        await settle(pilot)
        assert "100 failed tasks queued again" in toasts(app)
        for tid in first.task_ids:
            await engine.wait(tid, timeout=30)  # they fail again, the same way
        entry = (await engine.audit.entries(action="retry_all", limit=1))[0]
        assert entry.note == "INC-9" and entry.interface == "console"

        # d: purge the selected group; n declines, y purges
        screen.load()
        await settle(pilot)
        group = screen.selected
        assert group is not None
        await pilot.press("d", "n")
        await settle(pilot)
        assert (await engine.counts())[TaskState.FAILED] == 300
        await pilot.press("d", "y")
        await settle(pilot)
        assert (await engine.counts())[TaskState.FAILED] == 200
        await until(pilot, lambda: screen.table.row_count == 2)
        group_left = screen.selected
        assert group_left is not None

        # enter: the Failed screen, filtered to the group's handler
        await pilot.press("enter")
        await settle(pilot)
        failed = app.screen
        assert isinstance(failed, FailedScreen)
        assert failed.panel.query_filter.text.startswith("handler=upload error~")
        await until(pilot, lambda: failed.panel.selected is not None)
        assert failed.panel.selected is not None
        assert failed.panel.selected.id == group_left.sample_id


async def test_failures_view_when_nothing_failed(db_path: Path) -> None:
    app = ConsoleApp(build_engine(db_path))
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        await pilot.press("F")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, FailuresScreen)
        assert screen.query_one("#failures-empty").display
        await pilot.press("r")
        await settle(pilot)
        assert "no failure group to retry" in toasts(app)
        await pilot.press("escape")
        assert not isinstance(app.screen, FailuresScreen)


async def test_the_why_column_replaces_progress(db_path: Path) -> None:
    engine = build_engine(db_path, workers=1)
    app = ConsoleApp(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        await engine.pause("images")
        ids = await engine.enqueue_many([("images.resize", {"job_id": f"j{i}"}) for i in range(3)])
        app.refresh_tick()
        await settle(pilot)
        table = app.query_one("#queue", QueuePanel).table
        assert table.why is None and "PROGRESS" in screen_text(app)
        table.focus()
        await pilot.press("y")
        await until(pilot, lambda: bool(table.why), timeout=5)
        app.refresh_tick()
        await settle(pilot)
        assert table.why == dict.fromkeys(ids, "queue paused")
        text = screen_text(app)
        assert "WHY" in text and "PROGRESS" not in text and "queue paused" in text
        await pilot.press("y")
        app.refresh_tick()
        await settle(pilot)
        assert table.why is None and "PROGRESS" in screen_text(app)
