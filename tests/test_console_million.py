"""The console on a store with a million queued tasks: the same keys work, the cursor
stays on its task. (How fast is measured in bench/console_bench.py, not here.)"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from textual.widgets import Tab

from console.app import ConsoleApp
from console.panels.task_table import TaskTable

from .console_helpers import build_engine, bulk_queue, settle, started

MILLION = 1_000_000


@pytest.fixture(scope="module")
def million_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("million") / "tasks.db"

    async def create_schema() -> None:
        async with build_engine(path):
            pass

    asyncio.run(create_schema())
    bulk_queue(path, MILLION)  # priorities i % 10: every tenth task (9, 19, …) is a 9
    return path


async def test_a_million_queued_tasks(million_store: Path) -> None:
    engine = build_engine(million_store)
    app = ConsoleApp(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        tasks = app.query_one("#queue TaskTable", TaskTable)
        assert "Queued 1,000,000" in str(app.query_one("#tab-queued", Tab).label)
        assert tasks.total == MILLION
        assert tasks.selected is not None and tasks.selected.id == "9"  # priority 9, oldest

        await pilot.press(*["pagedown"] * 6, "down", "down")
        await settle(pilot)
        moved = tasks.selected
        assert moved is not None and tasks.cursor > 90 and moved.priority == 9

        # "-" moves the task 100,000 rows down (behind every other 9): the cursor follows.
        await pilot.press("minus")
        await settle(pilot)
        assert (await engine.get(moved.id)).priority == 8
        assert tasks.selected is not None and tasks.selected.id == moved.id
        assert tasks.cursor > MILLION // 10
        assert tasks.selected.priority == 8
        assert any(f"#{moved.id}" in line or moved.id in line for line in visible_text(tasks))

        # and "+" brings it back to the top group, still under the cursor
        await pilot.press("plus")
        await settle(pilot)
        assert (await engine.get(moved.id)).priority == 9
        assert tasks.selected is not None and tasks.selected.id == moved.id
        assert tasks.cursor < MILLION // 10

        await pilot.press("end")
        await settle(pilot)
        assert tasks.cursor == MILLION - 1
        assert tasks.selected is not None and tasks.selected.priority == 0
        await pilot.press("home")
        await settle(pilot)
        assert tasks.selected is not None and tasks.selected.id == "9"


def visible_text(table: TaskTable) -> list[str]:
    """The table's lines as on screen."""
    return [table.render_line(y).text for y in range(table.size.height)]
