"""Opening a store written by the previous schema (version 1) with this engine:
migration v2 rebuilds the tasks table and keeps every task and the id sequence."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from engine import TaskState
from engine.store.sqlite.schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION

from .conftest import EngineFactory

T0 = time.time() - 60  # recent: finished tasks are within their TTL


def make_v1_store(path: Path) -> None:
    """A version-1 store as the previous release left it: three queued tasks, one
    succeeded, one failed, and the newest task purged (the id sequence is ahead)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        assert conn.execute("PRAGMA journal_mode = WAL").fetchone()[0] == "wal"
        ((version, script),) = MIGRATIONS[:1]
        assert version == 1
        conn.execute("BEGIN IMMEDIATE")
        for statement in (st for st in script.split(";\n") if st.strip()):
            conn.execute(statement)
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute("PRAGMA user_version = 1")
        rows = [
            # id, handler, state, prev_state, attempts, payload, result, error, finished_at
            (1, "resize", "succeeded", "running", 1, {"width": 1}, 1, None, T0 + 2),
            (2, "resize", "failed", "running", 4, {"width": -1}, None, "ValueError", T0 + 3),
            (3, "resize", "queued", "", 0, {"width": 3}, None, None, None),
            (4, "resize", "queued", "", 0, {"width": 4}, None, None, None),
            (5, "resize", "queued", "", 0, {"width": 5}, None, None, None),
            (6, "resize", "queued", "", 0, {"width": 6}, None, None, None),
        ]
        for task_id, handler, state, prev, attempts, payload, result, error, done in rows:
            conn.execute(
                "INSERT INTO tasks (id, handler, queue, priority, state, prev_state, attempts, "
                "max_retries, retries, payload, result, error, created_at, finished_at, "
                "started_at) VALUES (?, ?, 'default', 5, ?, ?, ?, 3, 3, ?, ?, ?, ?, ?, ?)",
                (
                    task_id,
                    handler,
                    state,
                    prev,
                    attempts,
                    json.dumps(payload),
                    None if result is None else json.dumps(result),
                    error,
                    T0 + task_id,
                    done,
                    None if done is None else done - 0.5,
                ),
            )
        conn.execute("DELETE FROM tasks WHERE id = 6")  # the newest, purged
        conn.executemany(
            "INSERT INTO task_counts (queue, state, n) VALUES ('default', ?, ?)",
            [("succeeded", 1), ("failed", 1), ("queued", 3)],
        )
        conn.execute("COMMIT")
        assert conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'tasks'").fetchone() == (
            6,
        )
    finally:
        conn.close()


async def test_a_version_1_store_opens_with_its_tasks_and_ids(
    make_engine: EngineFactory, db_path: Path
) -> None:
    make_v1_store(db_path)
    engine = make_engine(workers=2)

    @engine.task(name="resize")
    async def resize(width: int) -> int:
        return width * 10

    async with engine:
        # Every task is kept, with its state, payload, result and error
        first, second = await engine.get(1), await engine.get(2)
        assert (first.state, first.result, first.payload) == (TaskState.SUCCEEDED, 1, {"width": 1})
        assert (second.state, second.error, second.attempts) == (TaskState.FAILED, "ValueError", 4)
        # The queued ones run under the new engine
        for task_id in ("3", "4", "5"):
            record = await engine.wait(task_id, timeout=10)
            assert record.state == TaskState.SUCCEEDED
            assert record.result == int(task_id) * 10
        # New ids continue after the purged one: 6 is never reused
        new = await engine.enqueue("resize", {"width": 7})
        assert int(new) == 7
        # and the new features work on the migrated store
        keyed = await engine.enqueue("resize", {"width": 8}, unique_key="k", delay=60)
        again = await engine.enqueue("resize", {"width": 8}, unique_key="k")
        assert int(keyed) == 8 and again == keyed and again.deduplicated  # type: ignore[attr-defined]
        assert (await engine.wait(new, timeout=5)).state == TaskState.SUCCEEDED
        counts = await engine.counts()  # read from the store (the snapshot's may lag a batch)
        assert counts[TaskState.SUCCEEDED] == 5 and counts[TaskState.FAILED] == 1
        assert counts[TaskState.SCHEDULED] == 1
        # A failed task from before the upgrade can be retried
        assert await engine.retry(2) == TaskState.FAILED
        retried = await engine.wait(2, timeout=5)
        assert (retried.state, retried.result, retried.attempts) == (TaskState.SUCCEEDED, -10, 5)
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert conn.execute("PRAGMA application_id").fetchone() == (APPLICATION_ID,)
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"tasks", "workflows", "schedules", "rate_buckets"} <= tables
        assert "tasks_v2" not in tables
        ids = [r[0] for r in conn.execute("SELECT id FROM tasks ORDER BY id")]
        assert ids == [1, 2, 3, 4, 5, 7, 8]
    finally:
        conn.close()
