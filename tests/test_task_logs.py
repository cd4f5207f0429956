"""Task logs: what handlers log is captured per task and attempt, bounded, stored
with the task (both backends), and shown by ``engine.logs``."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from engine import Engine, EventKind, RetryPolicy, TaskNotFound, TaskState, generate_key
from engine.store import task_logs as stored_logs

from . import log_handlers as lh
from .conftest import BOTH_BACKENDS, FAST


def _engine(store: str | Path, **options: Any) -> Engine:
    return Engine(store, workers=2, **{**FAST, **options})


@BOTH_BACKENDS
@pytest.mark.parametrize("executor", ["async", "thread", "process"])
async def test_three_lines_in_each_executor(store: str | Path, executor: str) -> None:
    # Given a handler that logs three lines, on each executor
    engine = _engine(store)
    fn = lh.three_lines_async if executor == "async" else lh.three_lines
    engine.task(name="images.resize", executor=executor)(fn)
    async with engine:
        # When it runs
        task_id = await engine.enqueue("images.resize", {"name": "cat.png"})
        assert (await engine.wait(task_id, timeout=20)).state == TaskState.SUCCEEDED
        # Then its three lines are stored with it, in order, with level and logger
        lines = await engine.logs(task_id)
    assert [(x.level, x.logger, x.message) for x in lines] == [
        ("INFO", "images.resize", "resizing cat.png"),
        ("WARNING", "images.resize", "cat.png is large"),
        ("ERROR", "images.resize", "done with cat.png"),
    ]
    assert {x.attempt for x in lines} == {1}
    assert all(abs(x.at - time.time()) < 60 for x in lines)


@BOTH_BACKENDS
async def test_attempts_told_apart_and_purged_with_the_task(store: str | Path) -> None:
    engine = _engine(store)
    engine.task(name="flaky", retries=1, retry=RetryPolicy.fixed(0.01))(lh.fails_first)
    async with engine:
        task_id = await engine.enqueue("flaky", {"n": 1})
        assert (await engine.wait(task_id, timeout=20)).state == TaskState.SUCCEEDED
        lines = await engine.logs(task_id)
        assert [(x.attempt, x.message) for x in lines] == [
            (1, "attempt 1 starts"),
            (2, "attempt 2 starts"),
        ]
        # a reader that saw the first line gets only the newer ones
        assert [x.message for x in await engine.logs(task_id, after=lines[0].seq)] == [
            "attempt 2 starts"
        ]
        # purged with the task: no line of it is left in the store
        assert await engine.purge("succeeded", ids=[task_id]) == 1
        with pytest.raises(TaskNotFound):
            await engine.logs(task_id)
        read = partial(stored_logs.read, task_id=int(task_id), after=0, limit=10)
        assert await engine._store.run_plan(read) == []


@pytest.mark.parametrize("executor", ["thread", "process"])
async def test_a_flood_is_capped_and_other_tasks_still_run(db_path: Path, executor: str) -> None:
    # Given a handler that logs 10 MB and a small limit
    engine = _engine(db_path, task_log_limit=20_000)
    engine.task(name="flood", executor=executor)(lh.flood)
    engine.task(name="images.resize", executor="thread")(lh.three_lines)
    async with engine:
        flood_id = await engine.enqueue("flood", {"megabytes": 10})
        other = [await engine.enqueue("images.resize", {"name": f"{i}.png"}) for i in range(5)]
        # Then the other tasks complete, and so does the flood
        for task_id in [*other, flood_id]:
            assert (await engine.wait(task_id, timeout=60)).state == TaskState.SUCCEEDED
        lines = await engine.logs(flood_id)
    kept = sum(len(x.message) for x in lines[:-1])
    assert kept <= 20_000
    marker = lines[-1]
    assert marker.logger == "taskdeck" and marker.level == "WARNING"
    assert "dropped" in marker.message and "task_log_limit" in marker.message
    dropped = int(marker.message.split(" ")[0].replace(",", ""))
    assert dropped + len(lines) - 1 == 10_000


async def test_bad_level_and_unknown_task_are_refused(db_path: Path) -> None:
    engine = _engine(db_path)

    def loud() -> None:
        from engine import current_task

        current_task().log("hi", level="loud")

    engine.task(name="loud", retries=0)(loud)
    async with engine:
        task_id = await engine.enqueue("loud", {})
        record = await engine.wait(task_id, timeout=20)
        assert record.state == TaskState.FAILED
        assert "log level must be one of debug, info, warning, error, critical" in str(record.error)
        with pytest.raises(TaskNotFound):
            await engine.logs("999999")


async def test_cleanup_removes_the_lines_and_messages_are_encrypted(db_path: Path) -> None:
    # Given an encrypted store whose finished tasks expire at once
    engine = _engine(db_path, encryption_key=generate_key(), result_ttl=0.2)
    engine.task(name="images.resize", executor="thread")(lh.three_lines)
    sub = engine.events([EventKind.EXPIRED])
    async with engine:
        task_id = await engine.enqueue("images.resize", {"name": "secret-cat.png"})
        await engine.wait(task_id, timeout=20)
        assert len(await engine.logs(task_id)) == 3
        # the lines are stored sealed, like payloads
        raw = sqlite3.connect(db_path).execute("SELECT message FROM task_logs").fetchall()
        assert len(raw) == 3 and not any("secret-cat" in m for (m,) in raw)
        # When the cleaner expires the task, its lines go with it
        expired = await asyncio.wait_for(sub.get(), 20)
        assert expired.data == {"count": 1}
        read = partial(stored_logs.read, task_id=int(task_id), after=0, limit=10)
        assert await engine._store.run_plan(read) == []
