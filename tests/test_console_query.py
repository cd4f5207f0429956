"""The console's ``/`` takes the query language (issue 17, item 1): ``/heic`` on the
Failed screen finds failures whose error says HEIC; a malformed query says where."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Input

from console.app import ConsoleApp
from console.panels.task_table import TaskTable

from .console_helpers import build_engine, open_failed, settle, started, toasts, until


async def test_slash_takes_a_query_on_the_failed_screen(db_path: Path) -> None:
    engine = build_engine(db_path, workers=2)

    @engine.task(name="images.convert", queue="images", retries=0)
    async def convert(name: str) -> None:
        raise ValueError(f"HEIC is not supported: {name}")

    app = ConsoleApp(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        heic = [await engine.enqueue("images.convert", {"name": f"p{i}.heic"}) for i in range(3)]
        smtp = [await engine.enqueue("mail.send", {"to": f"u{i}@example.com"}) for i in range(2)]
        for tid in heic + smtp:
            await engine.wait(tid, timeout=10)
        screen = await open_failed(pilot)
        table = screen.panel.query_one(TaskTable)
        screen.refresh_view()
        await settle(pilot)
        assert table.total == 5

        # a bare word matches the error text (it used to match handler and queue only)
        await pilot.press("slash", *"heic", "enter")
        await settle(pilot)
        await until(pilot, lambda: table.total == 3)
        assert {t.id for t in table._rows} == set(heic)

        # a query: fields, operators, AND/OR/NOT
        await pilot.press("slash", "ctrl+u", *"handler=mail.send AND payload.to~u1", "enter")
        await settle(pilot)
        await until(pilot, lambda: table.total == 1)
        assert [t.id for t in table._rows] == [smtp[1]]

        # a malformed query: the position and what was expected; the filter stays as it was
        await pilot.press("slash", "ctrl+u", *"error~", "enter")
        await settle(pilot)
        assert any("at 7: expected a value after '~'" in t for t in toasts(app))
        assert isinstance(app.focused, Input)  # still open, to be fixed
        assert [t.id for t in table._rows] == [smtp[1]]

        # R acts on a tab, queue or handler: a filter asking more is refused, not ignored
        await pilot.press("escape")
        await pilot.press("slash", "ctrl+u", *"heic", "enter")
        await settle(pilot)
        await pilot.press("R")
        await settle(pilot)
        assert any("R and P act on a whole tab" in t for t in toasts(app))
        assert (await engine.get(heic[0])).state == "failed"
