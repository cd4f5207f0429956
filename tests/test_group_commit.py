"""Group commit: many coroutines each awaiting their own ``enqueue`` (a web server's
request handlers) share transactions, on SQLite (the writer thread's turns) and on
PostgreSQL (one INSERT per turn); every caller still gets the id of its own task."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from engine import Engine
from engine.model import TaskId
from engine.store.base import NewTask
from engine.store.postgres.group import EnqueueGroup

from .conftest import BOTH_BACKENDS, FAST


@BOTH_BACKENDS
async def test_concurrent_enqueues_share_transactions_and_keep_their_own_ids(
    store: str,
) -> None:
    engine = Engine(store, workers=0, **FAST)

    @engine.task(name="note")
    async def note(caller: int, i: int) -> None:
        return None

    callers, each = 100, 5

    async def caller(c: int) -> list[tuple[int, int, TaskId]]:
        return [(c, i, await engine.enqueue("note", {"caller": c, "i": i})) for i in range(each)]

    async with engine:
        await engine.enqueue("note", {"caller": -1, "i": 0})  # connections warmed up
        before = engine.snapshot().stats["transactions"]
        sent = [row for rows in await asyncio.gather(*map(caller, range(callers))) for row in rows]
        used = engine.snapshot().stats["transactions"] - before
        assert len({task_id for _, _, task_id in sent}) == callers * each
        for c, i, task_id in sent[::7]:
            assert (await engine.get(task_id)).payload == {"caller": c, "i": i}
        assert (await engine.counts())["queued"] == callers * each + 1
    # one transaction per turn, not per enqueue (500 would be one each)
    assert used <= callers * each // 4, used


def _task(name: str) -> NewTask:
    return NewTask(handler=name, queue="default", priority=0, payload="{}", retries=0)


async def test_one_bad_enqueue_in_a_group_fails_alone_and_a_cancelled_one_is_left_out() -> None:
    statements: list[list[str]] = []
    background: set[asyncio.Task[None]] = set()
    release = asyncio.Event()

    async def insert(tasks: Sequence[NewTask]) -> list[TaskId]:
        names = [t.handler for t in tasks]
        statements.append(names)
        if names == ["first"]:
            await release.wait()  # the others queue up behind this statement
        if "bad" in names:
            raise ValueError("bad task refused")
        return [TaskId(len(statements) * 100 + k) for k in range(len(tasks))]

    def spawn(coro: object) -> None:
        task = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        background.add(task)

    group = EnqueueGroup(insert, spawn)
    first = asyncio.create_task(group.enqueue([_task("first")]))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    good = asyncio.create_task(group.enqueue([_task("good"), _task("good2")]))
    bad = asyncio.create_task(group.enqueue([_task("bad")]))
    gone = asyncio.create_task(group.enqueue([_task("gone")]))
    await asyncio.sleep(0)
    gone.cancel()
    release.set()
    assert await first == [TaskId(100)]
    assert len(await good) == 2
    with pytest.raises(ValueError, match="bad task refused"):
        await bad
    with pytest.raises(asyncio.CancelledError):
        await gone
    # the group went as one statement without the cancelled caller, failed, and each
    # of its callers was then tried on its own
    assert statements[1] == ["good", "good2", "bad"]
    assert statements[2:] == [["good", "good2"], ["bad"]]
    assert group.statements == 2 and group.grouped == 3
    await asyncio.gather(*background)
