"""Another process holds the store's write lock (issue 13, item 21).

Reads never wait for it (a read-only client reads through a WAL reader, which an
exclusive writer does not block), and a write gives up once, at ``lock_timeout``,
with one clear error, however many operations were waiting and whatever the open
itself had to wait for.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import Engine, StoreError, TaskState, chain

from .conftest import FAST


async def fill(path: Path) -> list[str]:
    engine = Engine(path, workers=0, strict_handlers=False, **FAST)

    @engine.periodic(every=3600, name="report")
    async def report() -> None:
        return None

    async with engine:
        ids = await engine.enqueue_many([("h", {"i": i}) for i in range(5)])
        flow = await engine.enqueue_workflow(chain(("h", {"i": 9}), ("h", {})))
    return [*ids, str(flow.id)]


@pytest.fixture
def holder(db_path: Path) -> Iterator[sqlite3.Connection]:
    """A second connection, as another program would hold it: ``BEGIN EXCLUSIVE``
    with a change not yet committed."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    yield conn
    if conn.in_transaction:
        conn.execute("ROLLBACK")
    conn.close()


def lock(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN EXCLUSIVE")
    conn.execute("UPDATE tasks SET priority = 9")


async def test_reads_return_at_once_while_another_process_holds_the_write_lock(
    db_path: Path, holder: sqlite3.Connection
) -> None:
    ids = await fill(db_path)
    lock(holder)
    engine = Engine(db_path, strict_handlers=False, busy_timeout=5.0, lock_timeout=60.0)
    began = time.monotonic()
    async with engine.client(read_only=True):
        assert engine.snapshot().counts[TaskState.QUEUED] == 6  # as `taskdeck status` reads
        assert len(await engine.tasks()) == 7
        assert (await engine.get(ids[0])).priority == 5  # the holder's change is not seen
        assert [s.name for s in await engine.schedules()] == ["report"]
        assert await engine.nodes() == []
        assert len((await engine.workflow(ids[-1])).steps) == 2
        assert (await engine.counts())[TaskState.SCHEDULED] == 1
    assert time.monotonic() - began < 2.0, "a read waited for the write lock"


async def test_a_blocked_write_gives_up_once_at_lock_timeout_and_writes_nothing(
    db_path: Path, holder: sqlite3.Connection
) -> None:
    ids = await fill(db_path)
    lock(holder)
    message = (
        f"the store {db_path} is locked by another process (waited 1 s, lock_timeout); "
        "nothing was written"
    )
    engine = Engine(db_path, strict_handlers=False, busy_timeout=1.0, lock_timeout=1.0)
    began = time.monotonic()
    async with engine.client():  # the open itself needs no lock on a current store
        opened = time.monotonic() - began
        with pytest.raises(StoreError) as refused:
            await engine.enqueue("h", {"i": 10})
        assert str(refused.value) == message
        # Several writes waiting together (one batch) fail together, once
        waited = time.monotonic()
        outcomes = await asyncio.gather(
            engine.enqueue("h", {"i": 11}),
            engine.cancel(ids[0]),
            engine.enqueue_many([("h", {"i": 12}), ("h", {"i": 13})]),
            return_exceptions=True,
        )
        assert [str(o) for o in outcomes] == [message] * 3
        assert time.monotonic() - waited < 2.0  # not 1 s for each of them in turn
    elapsed = time.monotonic() - began
    assert opened < 0.5 and elapsed < 3.5, (opened, elapsed)  # 2 × lock_timeout + margin
    holder.execute("ROLLBACK")
    async with engine.client(read_only=True):
        assert len(await engine.tasks()) == 7  # nothing was written
        assert (await engine.get(ids[0])).state == TaskState.QUEUED
