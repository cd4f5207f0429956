"""Tasks for a handler no node serves (issue 13, item 15): every node says which
handlers it runs (a column of its row, added by a migration; an older store opens and
its old rows read as "unknown"), ``Engine.unserved()`` names the handlers queued tasks
need and no alive node has, and the attached console warns ("No node serves images.x
— 12 tasks queued") and marks those rows "⚠ no node"."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from pathlib import Path

from textual.widgets import Input

from console.app import ConsoleApp
from console.panels.bottlenecks import BottlenecksPanel
from console.screens.enqueue import EnqueueScreen
from engine import Engine
from engine.cluster import unserved_findings
from engine.store.postgres.schema import SCHEMA_VERSION as PG_VERSION
from engine.store.sqlite.schema import SCHEMA_VERSION as SQLITE_VERSION

from .conftest import BOTH_BACKENDS, FAST
from .console_helpers import screen_text, settle, started, text_of
from .console_helpers import until as shown
from .pg_fixtures import sql

ALERT_TABLES = ("alerts", "alert_events", "alert_silences", "alert_leader", "audit")
#: Tables and columns later versions add (dropped to make an older store).
LATER_TABLES = (
    *ALERT_TABLES,
    "saved_settings",
    "task_logs",
    "operations",
    "history",
    "history_marks",
    "leases",
)
LATER_COLUMNS = ("trace_context",)

#: A line of the queue table: "│ 12       images.x        images …"
ROW = re.compile(r"│ [● ]? *\d+ +images\.\w+ +images ")


def node(store: str | Path, name: str) -> Engine:
    """A node that runs images.resize and images.notify."""
    engine = Engine(store, workers=1, name=name, **FAST)

    @engine.task(name="images.resize", queue="images")
    async def resize(image_id: str) -> str:
        return image_id

    @engine.task(name="images.notify", queue="images")
    async def notify(image_id: str) -> str:
        return image_id

    return engine


async def producer_enqueues(store: str | Path, tasks: list[tuple[str, int]]) -> None:
    """A producer that knows no handlers enqueues ``count`` tasks of each name."""
    producer = Engine(store, workers=0, strict_handlers=False, **FAST)
    async with producer:
        await producer.enqueue_many(
            [
                (name, {"image_id": f"i{i}"}, {"queue": "images"})
                for name, n in tasks
                for i in range(n)
            ]
        )


async def alive_nodes(engine: Engine, count: int) -> None:
    """Wait for ``count`` alive node rows (a node writes its row twice a second)."""
    deadline = time.monotonic() + 5
    while sum(n.state == "alive" for n in await engine.nodes()) < count:
        assert time.monotonic() < deadline, "the nodes never showed"
        await asyncio.sleep(0.05)


@BOTH_BACKENDS
async def test_nodes_say_their_handlers_and_unserved_ones_are_found(store: str | Path) -> None:
    await producer_enqueues(store, [("images.x", 12), ("images.legacy", 3)])
    a = node(store, "node-a")
    watcher = Engine(store, workers=0, strict_handlers=False, **FAST)
    async with a, watcher:
        await alive_nodes(watcher, 1)
        nodes = await watcher.nodes()
        [row] = [n for n in nodes if n.id == "node-a"]
        assert row.handlers is not None  # its own and the built-in webhook sender
        assert {"images.notify", "images.resize", "taskdeck.webhook", "taskdeck.alert"} == set(
            row.handlers
        )
        unserved = await watcher.unserved()
        assert unserved == {"images.x": 12, "images.legacy": 3}
        titles = [f.title for f in unserved_findings(unserved)]
        assert titles == [
            "No node serves images.x — 12 tasks queued",
            "No node serves images.legacy — 3 tasks queued",
        ]


async def test_a_store_from_before_the_handlers_column_opens(db_path: Path) -> None:
    """A schema-3 store with a node row written by an older version: it opens (the
    column is added), the old row reads as "handlers unknown", and while that node is
    alive nothing is called unserved (it may run anything)."""
    first = node(db_path, "node-new")
    async with first:
        pass  # creates the store
    with sqlite3.connect(db_path) as conn:  # what a version-3 store has: no later tables
        conn.execute("ALTER TABLE nodes DROP COLUMN handlers")
        conn.execute("DROP TRIGGER task_logs_gone")
        for table in LATER_TABLES:  # added by a later version
            conn.execute(f"DROP TABLE {table}")
        for column in LATER_COLUMNS:
            conn.execute(f"ALTER TABLE tasks DROP COLUMN {column}")
        conn.execute("PRAGMA user_version = 3")
        conn.execute(
            "INSERT INTO nodes (id, host, pid, version, started_at, last_seen, state, workers, "
            "busy) VALUES ('node-old', 'h', 1, '0.9', 1, 4102444800, 'alive', 2, 0)"
        )
    await producer_enqueues(db_path, [("images.x", 2)])
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (SQLITE_VERSION,)
        columns = [r[1] for r in conn.execute("PRAGMA table_info(nodes)")]
        assert "handlers" in columns
    again = node(db_path, "node-new")
    async with again:
        rows = {n.id: n for n in await again.nodes()}
        assert rows["node-old"].handlers is None and rows["node-old"].state == "alive"
        assert await again.unserved() == {}  # the old node may run images.x


async def test_a_postgres_store_from_before_the_handlers_column_opens(pg_url: str) -> None:
    first = node(pg_url, "node-new")
    async with first:
        pass
    await sql(pg_url, "ALTER TABLE nodes DROP COLUMN handlers")
    for table in LATER_TABLES:  # added by a later version: what a version-2 schema has
        await sql(pg_url, f"DROP TABLE {table} CASCADE")
    await sql(pg_url, "DROP FUNCTION task_logs_gone() CASCADE")
    for column in LATER_COLUMNS:
        await sql(pg_url, f"ALTER TABLE tasks DROP COLUMN {column}")
    await sql(pg_url, "UPDATE taskdeck_meta SET value = '2' WHERE key = 'schema_version'")
    await sql(
        pg_url,
        "INSERT INTO nodes (id, host, pid, version, started_at, last_seen, state, workers, "
        "busy) VALUES ('node-old', 'h', 1, '0.9', 1, 1, 'stopped', 2, 0)",
    )
    again = node(pg_url, "node-new")
    async with again:
        rows = {n.id: n for n in await again.nodes()}
        assert rows["node-old"].handlers is None
        version = await sql(pg_url, "SELECT value FROM taskdeck_meta WHERE key = 'schema_version'")
        assert version[0][0] == str(PG_VERSION)


async def test_the_attached_console_warns_and_marks_the_rows(db_path: Path) -> None:
    await producer_enqueues(db_path, [("images.x", 12)])
    a = node(db_path, "node-a")
    async with a:
        await a.pause("images")  # node-a runs images.resize: keep its tasks queued to look at
        await producer_enqueues(db_path, [("images.resize", 2)])
        console = Engine(db_path, workers=0, strict_handlers=False, name="console", **FAST)
        app = ConsoleApp(console, attach=True)
        async with app.run_test(size=(160, 50)) as pilot:
            await started(pilot)
            bottlenecks = app.query_one(BottlenecksPanel)

            def warned() -> bool:
                app.refresh_tick()
                return any(
                    "No node serves images.x — 12 tasks queued" in str(o.prompt)
                    for o in (
                        bottlenecks.get_option_at_index(i) for i in range(bottlenecks.option_count)
                    )
                )

            await shown(pilot, warned, timeout=10)
            await settle(pilot)
            rows = [line for line in screen_text(app).splitlines() if ROW.search(line)]
            x_rows = [row for row in rows if "images.x " in row]
            resize_rows = [row for row in rows if "images.resize " in row]
            assert x_rows and all("⚠ no node" in line for line in x_rows), x_rows
            assert resize_rows and not any("⚠ no node" in line for line in resize_rows)

            await pilot.press("e")  # the form says so before a task is sent to wait
            await settle(pilot)
            form = app.screen
            assert isinstance(form, EnqueueScreen)
            form.query_one("#handler-name", Input).value = "images.x"
            await settle(pilot)
            note = text_of(form.query_one("#signature"))
            assert "No alive node runs images.x" in note, note
            form.query_one("#handler-name", Input).value = "images.resize"
            await settle(pilot)
            assert "No alive node runs" not in text_of(form.query_one("#signature"))
            assert "images.notify" in form.known  # the nodes' handlers are suggested
