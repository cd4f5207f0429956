"""``engine.edit``: a task that is not running gets a new payload, priority, queue,
retries or due time, checked like enqueue (the same errors); save and retry runs a
failed task again with the new payload; the timeline keeps the old and new values;
a running task is refused, saying why."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest

from engine import Engine, InvalidTransition, TaskState, generate_key

from .conftest import BOTH_BACKENDS, FAST


def resizer(store: str | Path, **options: object) -> Engine:
    engine = Engine(store, workers=1, **{**FAST, **options})

    @engine.task(name="images.resize", retries=0)
    async def resize(image_id: str, width: int) -> str:
        if width <= 0:
            raise ValueError(f"width must be positive; got {width}")
        return f"{image_id}@{width}"

    return engine


@BOTH_BACKENDS
async def test_edit_a_failed_payload_and_retry_it_succeeds_with_the_new_payload(
    store: str | Path,
) -> None:
    engine = resizer(store)
    async with engine:
        task = await engine.enqueue("images.resize", {"image_id": "a", "width": 0})
        assert (await engine.wait(task, timeout=10)).state == TaskState.FAILED
        edited = await engine.edit(
            task, payload={"image_id": "a", "width": 640}, retry=True, note="INC-9: bad width"
        )
        assert edited.payload == {"image_id": "a", "width": 640}
        done = await engine.wait(task, timeout=10)
        assert (done.state, done.result) == (TaskState.SUCCEEDED, "a@640")
        notes = [e.note or "" for e in done.timeline]
        line = next(n for n in notes if n.startswith("edited by"))
        assert '{"image_id":"a","width":0} → {"image_id":"a","width":640}' in line
        assert "INC-9: bad width" in line
        entry = (await engine.audit.entries(action="edit"))[0]
        assert (entry.task_id, entry.outcome) == (str(task), "payload")
        assert entry.note == "INC-9: bad width"


@BOTH_BACKENDS
async def test_edit_priority_queue_retries_and_due_time_of_a_waiting_task(
    store: str | Path,
) -> None:
    engine = resizer(store)
    async with engine:
        await engine.pause("default")
        await engine.pause("urgent")
        task = await engine.enqueue("images.resize", {"image_id": "b", "width": 1}, priority=2)
        edited = await engine.edit(task, priority="high", queue="urgent", retries=4)
        assert (edited.priority, edited.queue, edited.max_retries) == (7, "urgent", 4)
        assert (await engine.counts("urgent"))[TaskState.QUEUED] == 1
        assert (await engine.counts("default"))[TaskState.QUEUED] == 0
        note = edited.timeline[-1].note or ""
        assert "priority 2 → 7" in note and "queue default → urgent" in note
        assert "retries 0 → 4" in note
        later = await engine.enqueue("images.resize", {"image_id": "c", "width": 1}, delay=3600)
        soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=60)
        moved = await engine.edit(later, run_at=soon)
        assert moved.run_at == pytest.approx(soon.timestamp(), abs=0.01)
        with pytest.raises(InvalidTransition, match="cannot be postponed"):
            await engine.edit(task, run_at=soon)


async def test_bad_edits_get_the_errors_enqueue_gives(db_path: Path) -> None:
    engine = resizer(db_path)
    async with engine:
        await engine.pause("default")
        task = await engine.enqueue("images.resize", {"image_id": "a", "width": 1})
        for bad in ({"image_id": "a"}, {"image_id": 1, "width": 1}, {"x": 1}):
            with pytest.raises(TypeError) as by_enqueue:
                await engine.enqueue("images.resize", bad)
            with pytest.raises(TypeError) as by_edit:
                await engine.edit(task, payload=bad)
            assert str(by_edit.value) == str(by_enqueue.value)
        with pytest.raises(ValueError, match="priority"):
            await engine.edit(task, priority=12)
        with pytest.raises(ValueError, match="queue name 'no way' is not allowed"):
            await engine.edit(task, queue="no way")
        with pytest.raises(ValueError, match="retries must be a whole number from 0 to 100"):
            await engine.edit(task, retries=-1)
        with pytest.raises(InvalidTransition, match=r"retry .* is for failed or cancelled"):
            await engine.edit(task, retry=True)
        with pytest.raises(LookupError, match="no task with id '999'"):
            await engine.edit("999", priority=1)
        assert (await engine.get(task)).payload == {"image_id": "a", "width": 1}


async def test_a_running_task_is_refused_saying_why(db_path: Path) -> None:
    engine = Engine(db_path, workers=1, **FAST)
    began, gate = asyncio.Event(), asyncio.Event()

    @engine.task(name="slow")
    async def slow(n: int) -> int:
        began.set()
        await gate.wait()
        return n

    async with engine:
        task = await engine.enqueue("slow", {"n": 1})
        await asyncio.wait_for(began.wait(), 10)
        with pytest.raises(InvalidTransition, match="is running: a running task cannot be edited"):
            await engine.edit(task, payload={"n": 2})
        gate.set()
        done = await engine.wait(task, timeout=10)
        assert done.result == 1
        with pytest.raises(InvalidTransition, match="only queued, scheduled, failed or cancelled"):
            await engine.edit(task, payload={"n": 2})


async def test_with_a_key_the_old_values_are_sealed_at_rest(db_path: Path) -> None:
    import sqlite3

    engine = resizer(db_path, encryption_key=generate_key())
    async with engine:
        await engine.pause("default")
        task = await engine.enqueue("images.resize", {"image_id": "secret-1", "width": 1})
        await engine.edit(task, payload={"image_id": "secret-2", "width": 1})
        assert "secret-1" in ((await engine.get(task)).timeline[-1].note or "")
    with sqlite3.connect(db_path) as conn:
        raw = conn.execute("SELECT timeline, payload FROM tasks").fetchone()
    assert "secret" not in raw[0] and "secret" not in raw[1]
