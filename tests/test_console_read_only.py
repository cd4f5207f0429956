"""The read-only console (``taskdeck console --read-only``): every binding of the
dashboard and of each screen is pressed; the ones that would change something are
refused with a toast, the others (looking) work, and the store is unchanged: every
row, the counts by state, the settings, the paused queues and the schedules. The header
says READ-ONLY. ``--hide-payloads`` keeps payloads and results out of the task detail."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from textual.binding import Binding, BindingType
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import Static

from console.app import ConsoleApp
from console.keys import DASHBOARD_KEYS
from console.panels.bottlenecks import BottlenecksPanel
from console.panels.task_table import TaskTable
from console.read_only import HIDDEN, REFUSED
from console.screens.alerts import AlertsScreen
from console.screens.failed import FailedScreen
from console.screens.failures import FailuresScreen
from console.screens.operations import OperationsScreen
from console.screens.queues import QueuesScreen
from console.screens.schedules import SchedulesScreen, ScheduleTable
from console.screens.settings import SettingsScreen
from console.screens.task_detail import TaskDetailScreen
from console.screens.task_stack import TaskStackScreen
from console.screens.trends import TrendsScreen
from engine import Engine

from .console_helpers import screen_text, settle, started, text_of, toasts
from .test_read_only import SECRET, make_store


def store_rows(db: Path) -> list[str]:
    """Every row of every table, as SQL (what changed anything would show here)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return list(conn.iterdump())


async def store_summary(db: Path | str) -> dict[str, Any]:
    """What an operator sees of the store: counts by state, setting values and
    sources, paused queues, schedules."""
    engine = Engine(db, workers=0, strict_handlers=False, name="reader")
    async with engine.client(read_only=True):
        snap = engine.snapshot()
        return {
            "counts": await engine.counts(),
            "settings": [(i.name, i.value, i.source) for i in await engine.settings_info()],
            "paused": sorted(snap.paused_queues),
            "all_paused": snap.all_paused,
            "schedules": [(s.name, s.paused, s.next_run) for s in await engine.schedules()],
            "nodes": sorted(n.id for n in await engine.nodes()),  # no row for the console
        }


@pytest.fixture
async def store(tmp_path: Path) -> dict[str, str]:
    db = tmp_path / "t.db"
    return await make_store(db) | {"db": str(db)}


def read_only_console(db: str, hide_payloads: bool = False) -> ConsoleApp:
    """The console as ``taskdeck console --read-only`` builds it."""
    engine = Engine(db, workers=0, strict_handlers=False, name="console", interface="console")
    return ConsoleApp(engine, attach=True, read_only=True, hide_payloads=hide_payloads)


@pytest.fixture
async def console(store: dict[str, str]) -> AsyncIterator[tuple[ConsoleApp, Pilot[ConsoleApp]]]:
    app = read_only_console(store["db"])
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        yield app, pilot


def keys_of(bindings: list[BindingType]) -> list[tuple[str, str]]:
    """(key, action) for every key of every binding."""
    out = []
    for binding in bindings:
        assert isinstance(binding, Binding)
        out += [(key.strip(), binding.action) for key in binding.key.split(",")]
    return out


def action_name(action: str) -> str:
    return action.removeprefix("app.").split("(")[0]


async def back_to_dashboard(pilot: Pilot[ConsoleApp]) -> None:
    app = pilot.app
    await settle(pilot)
    while len(app.screen_stack) > 1:
        app.pop_screen()
        await pilot.pause()
    if app.queue.has_class("-filtering") or app.queue.query_filter.active:
        app.queue.clear_filter()
    app.queue.table.focus()
    await settle(pilot)


async def press_and_check(
    pilot: Pilot[ConsoleApp], key: str, refused_as: str | None, where: str
) -> bool:
    """Press ``key``: a refusal toast if ``refused_as`` (the refused action), else none;
    True if it was refused."""
    app = pilot.app
    before = {n.identity for n in app._notifications}  # toasts expire: not by position
    await pilot.press(key)
    await settle(pilot)
    new = [
        str(n.message)
        for n in app._notifications
        if n.identity not in before and str(n.message).startswith("read-only console:")
    ]
    if refused_as is not None:
        assert new, f"{where}: {key} ({refused_as}) was not refused"
        assert new[-1].endswith("is not allowed (started with --read-only)")
    else:
        assert not new, f"{where}: {key} was refused, but it only looks: {new}"
    return bool(new)


def test_the_refused_actions_exist() -> None:
    """A name in the list that no screen has would protect nothing."""
    classes: dict[str, type[Any]] = {
        c.__name__: c
        for c in (
            ConsoleApp, TaskDetailScreen, FailedScreen, FailuresScreen, SchedulesScreen,
            AlertsScreen, SettingsScreen, QueuesScreen, OperationsScreen, TaskStackScreen,
        )
    }  # fmt: skip
    assert set(REFUSED) == set(classes)
    for name, refused in REFUSED.items():
        for action in refused:
            assert callable(getattr(classes[name], f"action_{action}", None)), (name, action)


async def test_every_dashboard_key_is_refused_or_only_looks(
    console: tuple[ConsoleApp, Pilot[ConsoleApp]], store: dict[str, str]
) -> None:
    _, pilot = console
    rows, summary = store_rows(Path(store["db"])), await store_summary(Path(store["db"]))
    await walk_the_dashboard(pilot)
    assert store_rows(Path(store["db"])) == rows
    assert await store_summary(Path(store["db"])) == summary


async def test_the_dashboard_on_postgresql_changes_nothing(pg_url: str) -> None:
    await make_store(pg_url)
    summary = await store_summary(pg_url)
    app = read_only_console(pg_url)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        await walk_the_dashboard(pilot)
        assert "READ-ONLY" in screen_text(app).splitlines()[0]
    assert await store_summary(pg_url) == summary


async def walk_the_dashboard(pilot: Pilot[ConsoleApp]) -> None:
    """Press every key of the dashboard (but q): the ones that change something are
    refused, the others are not."""
    refused = REFUSED["ConsoleApp"]
    pressed, refused_keys = 0, set()
    bindings = [*DASHBOARD_KEYS, *TaskTable.BINDINGS, *BottlenecksPanel.BINDINGS]
    for key, action in keys_of(bindings):
        if action in ("quit_dialog",):
            continue  # tested below: it ends the walk
        name = action_name(action)
        where = f"dashboard {key}"
        if await press_and_check(pilot, key, name if name in refused else None, where):
            refused_keys.add(key)
        pressed += 1
        await back_to_dashboard(pilot)
    assert pressed >= 30
    assert refused_keys == {
        "e", "c", "plus", "minus", "r", "right_square_bracket", "left_square_bracket", "w",
        "a", "x", "P",
    }  # fmt: skip


async def test_the_command_palette_is_refused_too(
    console: tuple[ConsoleApp, Pilot[ConsoleApp]], store: dict[str, str]
) -> None:
    app, pilot = console
    rows = store_rows(Path(store["db"]))
    await pilot.press("ctrl+p", *"resume everything")
    await pilot.pause(0.3)
    await pilot.press("enter")
    await settle(pilot)
    assert "read-only console: pausing everything is not allowed" in " ".join(toasts(app))
    assert store_rows(Path(store["db"])) == rows


#: (key that opens it, its class name, its class, its keys, the keys to be refused)
SCREENS: list[tuple[str, str, type[Screen[Any]], list[BindingType], set[str]]] = [
    ("f", "FailedScreen", FailedScreen, list(FailedScreen.BINDINGS), {"r", "R", "P"}),
    ("F", "FailuresScreen", FailuresScreen, list(FailuresScreen.BINDINGS), {"r", "d", "P"}),
    ("t", "SchedulesScreen", SchedulesScreen,
     [*SchedulesScreen.BINDINGS, *ScheduleTable.BINDINGS], {"p", "n"}),
    ("A", "AlertsScreen", AlertsScreen, list(AlertsScreen.BINDINGS), {"a", "s"}),
    ("s", "SettingsScreen", SettingsScreen, list(SettingsScreen.BINDINGS),
     {"ctrl+s", "ctrl+r"}),
    ("p", "QueuesScreen", QueuesScreen, [*QueuesScreen.BINDINGS, Binding("enter", "toggle_queue")],
     {"enter"}),
    ("", "TaskDetailScreen", TaskDetailScreen, list(TaskDetailScreen.BINDINGS), {"c", "r", "E"}),
    ("O", "OperationsScreen", OperationsScreen, list(OperationsScreen.BINDINGS), {"k"}),
    ("T", "TrendsScreen", TrendsScreen, list(TrendsScreen.BINDINGS), set()),
    # task detail's K (the walk opens the detail first)
    ("K", "TaskStackScreen", TaskStackScreen, list(TaskStackScreen.BINDINGS), set()),
]  # fmt: skip


@pytest.mark.parametrize(
    ("key", "name", "screen", "bindings", "expected"), SCREENS, ids=[s[1] for s in SCREENS]
)
async def test_every_key_of_each_screen_is_refused_or_only_looks(
    console: tuple[ConsoleApp, Pilot[ConsoleApp]],
    store: dict[str, str],
    key: str,
    name: str,
    screen: type[Screen[Any]],
    bindings: list[BindingType],
    expected: set[str],
) -> None:
    app, pilot = console
    rows, summary = store_rows(Path(store["db"])), await store_summary(Path(store["db"]))
    refused, refused_keys = REFUSED.get(name, {}), set()  # a screen that only looks
    for binding_key, action in keys_of(bindings):
        # Given the screen, opened (to look: that works read-only)
        if key and screen is not TaskStackScreen:
            await pilot.press(key)
        else:
            app.push_screen(TaskDetailScreen(app.engine, store["failed"]))
            if key:  # a key of the detail that opens a screen (K: the live stack)
                await settle(pilot)
                await pilot.press(key)
        await settle(pilot)
        assert isinstance(app.screen, screen), f"{name} did not open"
        # When one of its keys is pressed, then it is refused if it changes something
        what = action_name(action)
        where = f"{name} {binding_key}"
        if await press_and_check(pilot, binding_key, what if what in refused else None, where):
            refused_keys.add(binding_key)
        await back_to_dashboard(pilot)
    assert refused_keys == expected
    # And nothing in the store changed
    assert store_rows(Path(store["db"])) == rows
    assert await store_summary(Path(store["db"])) == summary


async def test_the_settings_apply_button_is_refused(
    console: tuple[ConsoleApp, Pilot[ConsoleApp]], store: dict[str, str]
) -> None:
    app, pilot = console
    rows = store_rows(Path(store["db"]))
    await pilot.press("s")
    await settle(pilot)
    await pilot.click("#apply")
    await settle(pilot)
    assert "read-only console: changing settings is not allowed" in " ".join(toasts(app))
    assert isinstance(app.screen, SettingsScreen)  # still open: nothing was applied
    assert store_rows(Path(store["db"])) == rows


async def test_the_header_says_read_only_and_the_console_writes_nothing(
    store: dict[str, str],
) -> None:
    db = Path(store["db"])
    rows = store_rows(db)
    app = read_only_console(store["db"])
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        await pilot.pause(1.2)  # a few refreshes: counts, nodes, alerts read
        app.refresh_tick()
        await settle(pilot)
        assert "READ-ONLY" in screen_text(app).splitlines()[0]
        assert app.demo is None and app.engine.worker_count == 0
        # quitting closes the store it only read
        await pilot.press("q", "enter")
        await settle(pilot)
    assert not app.engine.running
    assert store_rows(db) == rows  # no node row, no heartbeat, no saved settings


async def test_counts_follow_the_store_while_watching(store: dict[str, str]) -> None:
    app = read_only_console(store["db"])
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        queued = app.engine.snapshot().counts
        writer = Engine(store["db"], workers=0, strict_handlers=False, name="producer")
        async with writer.client():
            await writer.enqueue("mail.send", {"to": "x"})
        for _ in range(30):
            app.refresh_tick()
            await settle(pilot)
            if app.engine.snapshot().counts != queued:
                break
            await pilot.pause(0.1)
        assert sum(app.engine.snapshot().counts.values()) == sum(queued.values()) + 1


@pytest.mark.parametrize("hide", [True, False])
async def test_hide_payloads_in_the_task_detail(store: dict[str, str], hide: bool) -> None:
    app = read_only_console(store["db"], hide_payloads=hide)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        app.push_screen(TaskDetailScreen(app.engine, store["done"]))
        await settle(pilot)
        text = text_of(app.screen.query_one("#detail", Static))
        assert "mail.send" in text and "succeeded" in text
        if hide:
            assert SECRET not in text
            assert text.count(HIDDEN) == 2  # the payload and the result
        else:
            assert SECRET in text and HIDDEN not in text


async def test_hide_payloads_keeps_the_error(store: dict[str, str]) -> None:
    app = read_only_console(store["db"], hide_payloads=True)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        app.push_screen(TaskDetailScreen(app.engine, store["failed"]))
        await settle(pilot)
        text = text_of(app.screen.query_one("#detail", Static))
        assert "smtp refused bad" in text and '"bad"' not in text
