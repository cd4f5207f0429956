"""Storage faults: bad paths, foreign and corrupted files, a locked file, a full disk.

Each refusal says what is wrong (the engine raises, the CLI prints one line and exits
non-zero) and leaves the file byte for byte as it was. tests/test_store_sqlite.py
covers the Engine side of the path and foreign-file refusals; here the CLI side, the
"file unchanged" checks, corruption, locks and a full store.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, cast

import pytest

from engine import Engine, StoreError, StoreOpenError, TaskState
from engine.store.sqlite.driver import SQLiteStore
from engine.store.sqlite.schema import APPLICATION_ID, SCHEMA_VERSION

from .conftest import FAST, EngineFactory, until

ROOT = Path(__file__).resolve().parent.parent


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cli_status(store: Path | str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "console.cli", *extra, "--store", str(store)],
        cwd=ROOT,
        text=True,
        capture_output=True,
        timeout=60,
    )


def assert_one_line_refusal(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0], lines[0]


async def make_store(path: Path, n: int = 3, payload: str = "x") -> None:
    engine = Engine(path, workers=0, strict_handlers=False)
    async with engine:
        for start in range(0, n, 1000):
            await engine.enqueue_many(
                [("h", {"i": i, "pad": payload}) for i in range(start, min(n, start + 1000))]
            )
    assert not Path(f"{path}-wal").exists()


def on_writer(engine: Engine, sql: str) -> Any:
    """Run one statement on the engine's writer connection, between its batches."""
    store = cast(SQLiteStore, engine._store)  # the test's way into the writer thread
    return asyncio.ensure_future(store.on_writer(lambda conn: conn.execute(sql).fetchone()))


# -- paths and foreign files ----------------------------------------------------------


def test_cli_refuses_a_directory_and_a_missing_directory(tmp_path: Path) -> None:
    assert_one_line_refusal(cli_status(tmp_path, "status"), "it is a directory")
    assert_one_line_refusal(cli_status(tmp_path / "gone" / "t.db", "status"), "does not exist")
    assert not (tmp_path / "gone").exists()


async def test_other_program_and_newer_schema_left_unchanged_via_cli(tmp_path: Path) -> None:
    other = tmp_path / "app.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    conn.commit()
    conn.close()
    newer = tmp_path / "newer.db"
    conn = sqlite3.connect(newer)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.execute("CREATE TABLE tasks (id INTEGER PRIMARY KEY)")
    conn.commit()
    conn.close()
    for path, message in (
        (other, "an SQLite database of another program (tables: users)"),
        (newer, f"created by a newer Taskdeck (schema {SCHEMA_VERSION + 1} > {SCHEMA_VERSION})"),
    ):
        before = digest(path)
        assert_one_line_refusal(cli_status(path, "status"), message)
        assert digest(path) == before
        assert not Path(f"{path}-wal").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
async def test_read_only_file_is_refused_by_the_cli_and_left_unchanged(db_path: Path) -> None:
    await make_store(db_path)
    db_path.chmod(0o400)
    before = digest(db_path)
    assert_one_line_refusal(cli_status(db_path, "status"), "read-only")
    assert digest(db_path) == before


# -- corruption -----------------------------------------------------------------------


async def test_garbage_header_is_refused_and_never_overwritten(db_path: Path) -> None:
    await make_store(db_path, 50)
    data = bytearray(db_path.read_bytes())
    data[:100] = random.Random(7).randbytes(100)  # the 100-byte SQLite header
    db_path.write_bytes(bytes(data))
    before = digest(db_path)
    engine = Engine(db_path, workers=2)
    with pytest.raises(StoreOpenError, match=r"not an SQLite database.*was not touched"):
        await engine.start()
    assert not engine.running
    assert_one_line_refusal(cli_status(db_path, "status"), "it is not an SQLite database")
    assert digest(db_path) == before
    assert not Path(f"{db_path}-wal").exists()


def corrupt_a_middle_page(path: Path) -> int:
    """Overwrite one table leaf page near the middle of the file with random bytes."""
    data = bytearray(path.read_bytes())
    page_size = int.from_bytes(data[16:18], "big")
    pages = len(data) // page_size
    leaves = [n for n in range(2, pages) if data[n * page_size] == 0x0D]  # table leaf
    assert len(leaves) > 20, "expected a store with many pages"
    victim = min(leaves, key=lambda n: abs(n - pages // 2))
    data[victim * page_size : (victim + 1) * page_size] = random.Random(11).randbytes(page_size)
    path.write_bytes(bytes(data))
    return victim


async def test_random_bytes_in_a_middle_page_give_a_clear_error_and_no_overwrite(
    db_path: Path,
) -> None:
    await make_store(db_path, 3000, payload="p" * 100)
    corrupt_a_middle_page(db_path)
    before = digest(db_path)
    engine = Engine(db_path, workers=0, **FAST)
    try:
        await engine.start()
    except (StoreOpenError, StoreError) as exc:  # detected at start: also fine
        assert "corrupt" in str(exc) or "malformed" in str(exc)
    else:
        # The header and schema are intact, so start cannot tell; the first read of
        # the damaged page says so, as a StoreError.
        with pytest.raises(StoreError, match="the database file is corrupted"):
            await engine.tasks(limit=5000)
        await engine.stop()
    assert digest(db_path) == before, "the corrupted file was modified"
    result = cli_status(db_path, "tasks", "--limit", "5000")
    assert_one_line_refusal(result, "the database file is corrupted")
    assert digest(db_path) == before


async def test_workers_on_a_corrupted_store_stop_claiming_with_a_critical_finding(
    db_path: Path,
) -> None:
    await make_store(db_path, 3000, payload="p" * 100)
    corrupt_a_middle_page(db_path)
    # lock_timeout bounds how long stop() waits for completions it cannot save.
    engine = Engine(db_path, workers=2, strict_handlers=False, **{**FAST, "lock_timeout": 1.0})

    @engine.task(name="h")
    async def h(i: int, pad: str) -> None:
        return None

    async with engine:
        await until(
            lambda: any(f.rule == "store_error" for f in engine.snapshot().findings),
            timeout=30,
            what="a store_error finding",
        )
        finding = next(f for f in engine.snapshot().findings if f.rule == "store_error")
        assert finding.severity == "critical"
        assert "refuses claims" in finding.title and "corrupted" in finding.evidence
        assert "never overwrites" in finding.suggestion
        assert engine.running
    conn = sqlite3.connect(db_path)
    try:  # still corrupted: the engine did not "repair" it by rewriting the file
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] != "ok"
    except sqlite3.DatabaseError as exc:
        assert "malformed" in str(exc)
    finally:
        conn.close()


# -- a file locked by another process -------------------------------------------------

LOCKER = (
    "import sqlite3, sys, time\n"
    "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
    "c.execute('BEGIN EXCLUSIVE')\n"
    "print('locked', flush=True)\n"
    "time.sleep(float(sys.argv[2]))\n"
    "c.execute('COMMIT')\n"
)


async def hold_lock(path: Path, seconds: float) -> asyncio.subprocess.Process:
    """Another process that holds ``BEGIN EXCLUSIVE`` on ``path`` for ``seconds``."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", LOCKER, str(path), str(seconds), stdout=subprocess.PIPE
    )
    assert proc.stdout is not None
    assert (await proc.stdout.readline()).strip() == b"locked"
    return proc


async def test_enqueue_waits_for_a_lock_held_shorter_than_lock_timeout(
    make_engine: EngineFactory, db_path: Path
) -> None:
    engine = make_engine(workers=0, strict_handlers=False, busy_timeout=4.0, lock_timeout=4.0)
    async with engine:
        await engine.enqueue("h", {"n": 0})
        locker = await hold_lock(db_path, 1.0)
        t0 = time.monotonic()
        tid = await engine.enqueue("h", {"n": 1})
        waited = time.monotonic() - t0
        assert 0.3 < waited < 4.0, waited
        assert (await engine.get(tid)).state == TaskState.QUEUED
        assert await asyncio.wait_for(locker.wait(), 10) == 0


async def test_enqueue_fails_clearly_when_the_lock_outlasts_lock_timeout(
    make_engine: EngineFactory, db_path: Path
) -> None:
    engine = make_engine(workers=0, strict_handlers=False, busy_timeout=0.3, lock_timeout=0.3)
    async with engine:
        await engine.enqueue("h", {"n": 0})
        locker = await hold_lock(db_path, 3.0)
        t0 = time.monotonic()
        with pytest.raises(
            StoreError,
            match=r"is locked by another process \(waited 0.3 s, lock_timeout\); nothing was",
        ):
            await engine.enqueue("h", {"n": 1})
        assert time.monotonic() - t0 < 2.5
        assert await asyncio.wait_for(locker.wait(), 10) == 0
        tid = await engine.enqueue("h", {"n": 2})  # the lock is gone: writes work again
        assert sorted(t.payload["n"] for t in await engine.tasks()) == [0, 2]  # 1 not stored
        assert (await engine.get(tid)).state == TaskState.QUEUED


# -- a full store ---------------------------------------------------------------------


async def test_enqueue_into_a_full_store_says_so_and_loses_nothing(
    make_engine: EngineFactory, db_path: Path
) -> None:
    engine = make_engine(workers=0, strict_handlers=False)
    async with engine:
        kept = await engine.enqueue_many([("h", {"i": i}) for i in range(50)])
        await on_writer(engine, "PRAGMA max_page_count = 1")  # clamps to the current size
        with pytest.raises(StoreError, match="the store is full"):
            await engine.enqueue_many([("h", {"pad": "z" * 1000}) for _ in range(300)])
        with pytest.raises(StoreError, match="the store is full"):
            await engine.enqueue("h", {"pad": "z" * 100_000})
        assert (await engine.tasks(limit=1000)).total == 50
        await on_writer(engine, "PRAGMA max_page_count = 1073741823")  # space returns
        more = await engine.enqueue_many([("h", {"pad": "z" * 1000}) for _ in range(300)])
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    ids = {str(r[0]) for r in conn.execute("SELECT id FROM tasks")}
    assert ids == set(kept) | set(more)
    conn.close()


async def test_a_full_store_during_a_run_pauses_work_and_resumes_losing_nothing(
    make_engine: EngineFactory, db_path: Path
) -> None:
    engine = make_engine(workers=4)
    runs: dict[int, int] = {}

    @engine.task(name="fill", retries=0)
    async def fill(n: int) -> str:
        runs[n] = runs.get(n, 0) + 1
        await asyncio.sleep(0.01)
        return f"{n}:" + "r" * 3000  # every result needs new pages

    total = 300
    async with engine:
        await engine.enqueue_many([("fill", {"n": n}) for n in range(total)])
        await until(lambda: len(runs) >= 20, what="some tasks to run")
        await on_writer(engine, "PRAGMA max_page_count = 1")
        await until(
            lambda: any(
                f.rule == "store_error" and "full" in f.evidence for f in engine.snapshot().findings
            ),
            timeout=20,
            what="a critical 'store is full' finding",
        )
        finding = next(f for f in engine.snapshot().findings if f.rule == "store_error")
        assert finding.severity == "critical" and "Free disk space" in finding.suggestion
        assert engine.running
        assert len(runs) < total, "the full store should have stopped the claiming"
        await on_writer(engine, "PRAGMA max_page_count = 1073741823")
        await engine.drain(timeout=40)
        await until(
            lambda: not any(f.rule == "store_error" for f in engine.snapshot().findings),
            timeout=10,
            what="the store finding to clear",
        )
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = conn.execute("SELECT state, count(*) FROM tasks GROUP BY state").fetchall()
    assert rows == [("succeeded", total)]
    conn.close()
    assert sorted(runs) == list(range(total))
