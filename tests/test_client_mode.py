"""``engine.client()``: the store opened for commands only (issue 13, item 3).

A command-line read (``taskdeck status``) used to start the whole engine: with no
engine running it fired the due periodic run on every call, and on a mistyped path
it created an empty store. ``client()`` opens the store and nothing else;
``create=False`` refuses a store that is not there, and ``read_only=True`` writes
nothing at all (the file's bytes and the directory stay as they were).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from engine import (
    Engine,
    ReadOnlyError,
    StoreOpenError,
    TaskState,
    chain,
)

from .conftest import FAST
from .pg_fixtures import schema_of, server_of, sql
from .test_migration import make_v1_store


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def listing(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


def with_report(engine: Engine) -> Engine:
    """The demo's shape: a handler with an hourly periodic run (not due for an hour)."""

    @engine.periodic(every=3600, name="images.report")
    async def report() -> None:
        return None

    @engine.task(name="images.resize")
    async def resize(width: int) -> int:
        return width

    return engine


async def fill(url: str | Path) -> dict[str, Any]:
    """A store with queued, failed and workflow tasks, a paused queue and a schedule;
    returns the ids. Run with no workers, so nothing moves."""
    engine = with_report(Engine(url, workers=0, **FAST))
    async with engine:
        ids = await engine.enqueue_many([("images.resize", {"width": w}) for w in (1, 2, 3)])
        flow = await engine.enqueue_workflow(
            chain(("images.resize", {"width": 4}), ("images.resize", {}))
        )
        await engine.cancel(ids[2])
        await engine.pause("default")
    return {"ids": ids, "flow": flow.id, "cancelled": ids[2]}


async def read_everything(engine: Engine, made: dict[str, Any]) -> None:
    """Every read an operator's command makes, checked against what ``fill`` wrote."""
    first = made["ids"][0]
    assert engine.running
    snap = engine.snapshot()
    assert snap.counts[TaskState.QUEUED] == 3 and snap.counts[TaskState.CANCELLED] == 1
    assert snap.queues["default"].paused and snap.queues["default"].depth == 3
    assert (await engine.get(first)).payload == {"width": 1}
    page = await engine.tasks(state="queued")
    assert [t.id for t in page][:2] == made["ids"][:2] and page.total == 3
    assert await engine.position(first, "queued") == 0
    around = await engine.tasks_around(first, "queued", limit=2)
    assert around is not None and around.offset == 0
    assert (await engine.counts())[TaskState.SCHEDULED] == 1  # the waiting workflow step
    assert len((await engine.workflow(made["flow"])).steps) == 2
    (schedule,) = await engine.schedules()
    assert schedule.name == "images.report"
    assert await engine.nodes() == []  # the filling engine ran no workers: no node
    assert await engine.command_results(1) == []


async def refuse_every_write(engine: Engine, made: dict[str, Any]) -> None:
    first, cancelled = made["ids"][0], made["cancelled"]
    writes: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
        ("enqueue", lambda: engine.enqueue("images.resize", {"width": 9})),
        ("enqueue", lambda: engine.enqueue_many([("images.resize", {"width": 9})])),
        (
            "enqueue a workflow",
            lambda: engine.enqueue_workflow(chain(("images.resize", {"width": 1}))),
        ),
        ("cancel", lambda: engine.cancel(first)),
        ("reprioritize", lambda: engine.reprioritize(first, 9)),
        ("retry", lambda: engine.retry(cancelled)),
        ("retry", lambda: engine.retry_all("cancelled")),
        ("purge", lambda: engine.purge("cancelled")),
        ("pause a queue", lambda: engine.pause("other")),
        ("resume a queue", lambda: engine.resume("default")),
        ("pause a schedule", lambda: engine.pause_schedule("images.report")),
        ("resume a schedule", lambda: engine.resume_schedule("images.report")),
        ("trigger a schedule", lambda: engine.trigger_schedule("images.report")),
        ("send a command", lambda: engine.send_command("set_workers", {"n": 2})),
    ]
    for verb, write in writes:
        with pytest.raises(ReadOnlyError) as refused:
            await write()
        assert str(refused.value) == (
            "the engine was opened read-only (engine.client(read_only=True)); cannot " + verb
        )


# -- SQLite ---------------------------------------------------------------------------


def make_due(db: Path) -> int:
    """Make the stored schedule due now (as after an hour with no engine); returns the
    highest task id."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("UPDATE schedules SET next_run = 0")
        return int(conn.execute("SELECT max(id) FROM tasks").fetchone()[0])
    finally:
        conn.close()


def max_id(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT max(id) FROM tasks").fetchone()[0])
    finally:
        conn.close()


async def test_client_runs_commands_and_fires_no_due_schedule(db_path: Path) -> None:
    made = await fill(db_path)
    top = make_due(db_path)
    engine = with_report(Engine(db_path, workers=4, **FAST))
    async with engine.client() as client:
        assert client is engine
        await read_everything(engine, made)
        await asyncio.sleep(0.3)  # the scheduler would have fired by now (FAST intervals)
        assert max_id(db_path) == top, "client() enqueued a periodic run"
        # Commands work: they are the reason for a read-write client
        new = await engine.enqueue("images.resize", {"width": 5}, queue="other")
        assert int(new) == top + 1
        assert await engine.cancel(new) == TaskState.QUEUED
        assert await engine.resume("default")
        assert engine.snapshot().worker_count == 4 and engine.snapshot().busy_workers == 0
    assert not engine.running
    assert max_id(db_path) == top + 1  # only what was enqueued by hand
    assert (await asyncio.to_thread(_schedule_next_run, db_path)) == 0, "the run stayed due"
    assert "tasks.db-wal" not in listing(db_path.parent)  # closed like any engine


def _schedule_next_run(db: Path) -> float:
    conn = sqlite3.connect(db)
    try:
        return float(conn.execute("SELECT next_run FROM schedules").fetchone()[0])
    finally:
        conn.close()


async def test_read_only_client_reads_everything_and_writes_nothing(db_path: Path) -> None:
    made = await fill(db_path)
    make_due(db_path)
    before, files = digest(db_path), listing(db_path.parent)
    assert files == ["tasks.db"]
    engine = with_report(Engine(db_path, workers=4, **FAST))
    async with engine.client(read_only=True):
        await read_everything(engine, made)
        await refuse_every_write(engine, made)
        await asyncio.sleep(0.3)  # no scheduler, promoter or rescuer to write anything
    assert not engine.running
    assert digest(db_path) == before
    assert listing(db_path.parent) == files  # the -wal/-shm SQLite needed are gone again
    # and the same engine can open it read-write afterwards
    async with engine.client():
        assert (await engine.counts())[TaskState.QUEUED] == 3


async def test_a_store_that_is_not_there_is_refused_and_nothing_is_created(
    tmp_path: Path,
) -> None:
    (tmp_path / "empty.db").touch()
    cases = [
        (tmp_path / "typo.db", "no such file"),
        (tmp_path / "empty.db", "the file is empty"),
        (tmp_path / "gone" / "t.db", f"the directory {tmp_path / 'gone'} does not exist"),
    ]
    for path, why in cases:
        for options in ({"create": False}, {"read_only": True}):
            files = listing(tmp_path)
            with pytest.raises(StoreOpenError) as refused:
                async with Engine(path).client(**options):
                    raise AssertionError("opened")
            assert str(refused.value) == (
                f"no Taskdeck store at {path} ({why}); check --store, or start an engine there "
                f"first (taskdeck run --headless --store {path})"
            )
            assert listing(tmp_path) == files
    assert (tmp_path / "empty.db").stat().st_size == 0
    # create=True (the default) makes a new store, as start() does
    async with Engine(tmp_path / "new.db").client() as engine:
        assert (await engine.counts())[TaskState.QUEUED] == 0
    assert (tmp_path / "new.db").stat().st_size > 0


async def test_read_only_reads_an_older_store_only_if_nothing_it_reads_is_missing(
    tmp_path: Path, db_path: Path
) -> None:
    old = tmp_path / "v1.db"
    make_v1_store(old)
    before = digest(old)
    with pytest.raises(StoreOpenError, match="was written by an older Taskdeck") as refused:
        async with Engine(old).client(read_only=True):
            raise AssertionError("opened")
    assert "schema 1" in str(refused.value) and "start an engine on it once" in str(refused.value)
    assert digest(old) == before and listing(tmp_path) == ["v1.db"]
    # A store marked older whose tables already have every column is read as it is
    made = await fill(db_path)
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA user_version = 2")
    conn.close()
    before = digest(db_path)
    async with Engine(db_path, **FAST).client(read_only=True) as engine:
        assert len(await engine.tasks()) == len(made["ids"]) + 2
    assert digest(db_path) == before


async def test_client_of_a_running_engine_is_refused_and_cancel_reaches_other_nodes(
    db_path: Path,
) -> None:
    worker = Engine(db_path, workers=1, name="node-w", **FAST)
    started, stopped = asyncio.Event(), asyncio.Event()

    @worker.task(name="slow")
    async def slow() -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        finally:
            stopped.set()

    async with worker:
        with pytest.raises(RuntimeError, match="already running"):
            async with worker.client():
                pass
        task_id = await worker.enqueue("slow")
        await asyncio.wait_for(started.wait(), 10)
        async with Engine(db_path, strict_handlers=False, **FAST).client() as client:
            assert await client.cancel(task_id) == TaskState.RUNNING  # sent to node-w
        assert (await worker.get(task_id)).state == TaskState.CANCELLED
        await asyncio.wait_for(stopped.wait(), 10)  # the node stopped it (command or lease)


def test_client_arguments_are_checked() -> None:
    engine = Engine("sqlite:///never-made.db")
    with pytest.raises(TypeError, match="read_only must be True or False; got 'yes'"):
        engine.client(read_only="yes")  # type: ignore[arg-type]
    assert not Path("never-made.db").exists()


# -- PostgreSQL -----------------------------------------------------------------------


async def test_postgres_client_modes(pg_url: str) -> None:
    schema = schema_of(pg_url)
    exists = "SELECT count(*) FROM pg_namespace WHERE nspname = $1"
    for options in ({"create": False}, {"read_only": True}):
        with pytest.raises(StoreOpenError) as refused:
            async with Engine(pg_url).client(**options):
                raise AssertionError("opened")
        assert f"no Taskdeck store in schema {schema!r} of database 'test'" in str(refused.value)
        assert await sql(server_of(pg_url), exists, schema) == [(0,)]
    made = await fill(pg_url)
    await sql(pg_url, "UPDATE schedules SET next_run = 0")
    (top,) = await sql(pg_url, "SELECT max(id) FROM tasks")
    engine = with_report(Engine(pg_url, workers=4, **FAST))
    async with engine.client(read_only=True):
        await read_everything(engine, made)
        await refuse_every_write(engine, made)
        await asyncio.sleep(0.3)
    async with engine.client():
        await read_everything(engine, made)
        new = await engine.enqueue("images.resize", {"width": 5})
    assert await sql(pg_url, "SELECT max(id) FROM tasks") == [(int(new),)]
    assert int(new) == top[0] + 1, "client() enqueued a periodic run"
    assert await sql(pg_url, "SELECT next_run FROM schedules") == [(0.0,)]
