"""The SQLite store: schema guards, query plans, and refusing files that are not ours."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
from pathlib import Path

import pytest

from engine import Engine, StoreError, StoreOpenError
from engine.model import TaskState
from engine.store import open_store, sqlite_path
from engine.store.base import NewTask, TaskFilter
from engine.store.sqlite import tasks as ops
from engine.store.sqlite.driver import SQLiteStore
from engine.store.sqlite.schema import APPLICATION_ID, SCHEMA_VERSION


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def filled_store(path: Path, n: int = 3000) -> SQLiteStore:
    store = SQLiteStore(path)
    await store.open()
    queues = ["mail", "images", "reports"]
    await store.enqueue([NewTask("h", queues[i % 3], i % 10, "{}", 3) for i in range(n)])
    return store


async def test_new_store_is_private_wal_and_marked(db_path: Path) -> None:
    store = SQLiteStore(db_path)
    await store.open()
    await store.close()
    assert stat.S_IMODE(db_path.stat().st_mode) == 0o600
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental


async def test_schema_refuses_illegal_transitions_even_from_raw_sql(db_path: Path) -> None:
    store = await filled_store(db_path, 3)
    await store.close()
    conn = sqlite3.connect(db_path, isolation_level=None)
    # queued -> succeeded skips running: refused by the CHECK constraint.
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        conn.execute(
            "UPDATE tasks SET prev_state = state, state = 'succeeded', finished_at = 1 WHERE id = 1"
        )
    # running without a lease: refused.
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        conn.execute("UPDATE tasks SET prev_state = state, state = 'running' WHERE id = 1")
    # priority outside 0..9: refused.
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        conn.execute("UPDATE tasks SET priority = 10 WHERE id = 1")
    # a legal move passes.
    conn.execute(
        "UPDATE tasks SET prev_state = state, state = 'cancelled', finished_at = 1 WHERE id = 1"
    )
    # succeeded is final: no way out, not even back to queued.
    conn.execute(
        "UPDATE tasks SET prev_state = state, state = 'running', lease_owner = 'w', "
        "lease_expires_at = 9 WHERE id = 2"
    )
    conn.execute(
        "UPDATE tasks SET prev_state = state, state = 'succeeded', finished_at = 1, "
        "lease_owner = NULL, lease_expires_at = NULL WHERE id = 2"
    )
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        conn.execute(
            "UPDATE tasks SET prev_state = state, state = 'queued', finished_at = NULL WHERE id = 2"
        )


def _plan(conn: sqlite3.Connection, sql: str, params: object) -> list[str]:
    return [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params)]  # type: ignore[arg-type]


async def test_hot_queries_use_their_indexes(db_path: Path) -> None:
    store = await filled_store(db_path)
    await store.close()
    conn = sqlite3.connect(db_path)
    conn.execute("ANALYZE")
    params = {
        "n": 10,
        "handlers": '["h"]',
        "owner": "me",
        "by": "me",
        "now": 1.0,
        "expires": 2.0,
        "q0": "images",
        "q1": "mail",
    }

    one = _plan(conn, ops.claim_sql(1), params)
    assert "SEARCH tasks USING INDEX tasks_ready (queue=?)" in one
    assert not any("TEMP B-TREE" in step for step in one)
    two = _plan(conn, ops.claim_sql(2), params)
    # Each queue's top rows come from the index; only the ≤ 2n merged rows are sorted.
    assert two.count("SEARCH tasks USING INDEX tasks_ready (queue=?)") == 2
    assert "SCAN tasks" not in two

    assert "SEARCH tasks USING INDEX tasks_due (run_at<?)" in _plan(
        conn, ops.PROMOTE, {"now": 1.0, "by": None}
    )
    assert _plan(conn, ops.EXPIRED_LEASES, (1.0, "me")) == [
        "SEARCH tasks USING INDEX tasks_running (lease_expires_at<?)"
    ]
    assert "tasks_running" in _plan(conn, ops.RENEW, (1.0, "me"))[0]
    purge = _plan(conn, ops.PURGE_EXPIRED, ("succeeded", 1.0, 10))
    assert any("tasks_finished (state=? AND finished_at<?)" in step for step in purge)

    lister = SQLiteStore(db_path)
    lister._by_queue = {q: {TaskState.QUEUED: 1000} for q in ("mail", "images", "reports")}  # type: ignore[misc]
    for flt, index in [
        (TaskFilter(TaskState.QUEUED), "tasks_ready"),
        (TaskFilter(TaskState.QUEUED, queue="mail"), "tasks_ready"),
        (TaskFilter(TaskState.FAILED), "tasks_finished"),
        (TaskFilter(TaskState.SCHEDULED), "tasks_due"),
    ]:
        query = lister._list_query(flt)
        steps = _plan(conn, query.sql, query.params)
        assert any(index in step for step in steps), (flt, steps)
        assert "SCAN tasks" not in steps, (flt, steps)  # never a full-table scan


async def test_counts_table_matches_the_rows(db_path: Path) -> None:
    store = await filled_store(db_path, 300)
    claimed = await store.claim("me", 40, ["h"], 30)
    await store.cancel(claimed[0].id, "op", "test")
    counts = await store.counts()
    await store.close()
    conn = sqlite3.connect(db_path)
    rows = conn.execute("SELECT queue, state, count(*) FROM tasks GROUP BY queue, state").fetchall()
    for queue, state, n in rows:
        assert counts.by_queue[queue][TaskState(state)] == n
    assert counts.totals()[TaskState.RUNNING] == 39
    assert counts.totals()[TaskState.CANCELLED] == 1


async def test_enqueue_is_all_or_nothing_on_a_constraint_failure(db_path: Path) -> None:
    store = SQLiteStore(db_path)
    await store.open()
    good = NewTask("h", "q", 5, "{}", 3)
    bad = NewTask("h", "q", 42, "{}", 3)  # priority 42 violates the schema
    with pytest.raises(StoreError, match="CHECK constraint failed"):
        await store.enqueue([good, good, bad])
    assert (await store.counts()).totals()[TaskState.QUEUED] == 0
    assert await store.tasks(TaskFilter()) == []
    await store.close()


# -- files that are not ours ---------------------------------------------------------


def test_store_urls() -> None:
    assert sqlite_path("sqlite:///data/t.db") == Path("data/t.db")
    assert sqlite_path("sqlite:////var/t.db") == Path("/var/t.db")
    assert sqlite_path("plain.db") == Path("plain.db")
    for bad, message in [
        ("mysql://x/y", "unsupported store URL scheme 'mysql'"),
        ("sqlite://host/t.db", "has no host"),
        ("sqlite:///:memory:", "names no database file"),
        ("", "must be a URL or a path"),
    ]:
        with pytest.raises(StoreOpenError, match=message):
            open_store(bad)


async def _refused(path: Path, message: str) -> None:
    before = digest(path) if path.is_file() else None
    engine = Engine(path, workers=1)
    with pytest.raises(StoreOpenError, match=message):
        await engine.start()
    assert not engine.running
    if before is not None:
        assert digest(path) == before, "the file was modified"
    assert not Path(f"{path}-wal").exists()


async def test_text_file_is_not_a_store(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello, I am not a database\n" * 100)
    await _refused(path, "it is not an SQLite database")


async def test_other_programs_database_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO users (name) VALUES ('ada')")
    conn.commit()
    conn.close()
    await _refused(path, r"another program \(tables: users\)")


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute("PRAGMA user_version = 99")
    conn.execute("CREATE TABLE tasks (id INTEGER PRIMARY KEY)")
    conn.commit()
    conn.close()
    await _refused(path, rf"newer Taskdeck \(schema 99 > {SCHEMA_VERSION}\)")


async def test_missing_directory_and_directory_paths(tmp_path: Path) -> None:
    await _refused(tmp_path / "nope" / "t.db", "directory .* does not exist")
    await _refused(tmp_path, "it is a directory")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
async def test_read_only_file_is_refused(db_path: Path) -> None:
    store = SQLiteStore(db_path)
    await store.open()
    await store.close()
    db_path.chmod(0o400)
    await _refused(db_path, "read-only")


async def test_read_only_file_is_refused_even_for_root(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SQLiteStore(db_path)
    await store.open()
    await store.close()
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: False if Path(p) == db_path else real_access(p, mode)
    )
    await _refused(db_path, "read-only")


async def test_empty_file_becomes_a_store(db_path: Path) -> None:
    db_path.touch()
    store = SQLiteStore(db_path)
    await store.open()
    assert await store.enqueue([NewTask("h", "q", 5, "{}", 0)]) == ["1"]
    await store.close()
