"""Files that are not a Taskdeck store are refused and left exactly as they were
(issue 13, items 19 and 26).

Only a file that is clearly empty (no file, zero bytes, or an SQLite database with
no schema objects, user_version 0 and application_id 0) or clearly ours (Taskdeck's
application_id) is opened. Anything else is refused before any write, WAL switch or
migration, and a refused open leaves the directory as it found it: no -wal, -shm or
-journal files of its own.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from engine import (
    EncryptionKeyError,
    Engine,
    EventKind,
    StoreError,
    StoreOpenError,
    generate_key,
)

from .conftest import FAST, ROOT, taskdeck
from .test_migration import make_v1_store


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sqlite_file(path: Path, *statements: str, wal: bool = False) -> Path:
    conn = sqlite3.connect(path, isolation_level=None)
    if wal:
        conn.execute("PRAGMA journal_mode = WAL")
    for statement in statements:
        conn.execute(statement)
    conn.close()
    assert not Path(f"{path}-wal").exists()
    return path


def foreign_files(directory: Path) -> dict[Path, str]:
    """Files of other programs, and the reason each refusal must give."""
    text = directory / "notes.txt"
    text.write_text("hello, I am not a database\n" * 200)
    other = "it is an SQLite database of another program"
    return {
        sqlite_file(directory / "uv1.db", "PRAGMA user_version = 1"): (
            f"{other} (user_version 1, no Taskdeck tables)"
        ),
        sqlite_file(directory / "uv2.db", "PRAGMA user_version = 2"): (
            f"{other} (user_version 2, no Taskdeck tables)"
        ),
        sqlite_file(directory / "app.db", "CREATE TABLE users (id INTEGER PRIMARY KEY)"): (
            f"{other} (tables: users)"
        ),
        sqlite_file(directory / "appid.db", "PRAGMA application_id = 305419896"): (
            f"{other} (application_id 0x12345678, not Taskdeck's)"
        ),
        sqlite_file(
            directory / "walapp.db", "CREATE TABLE notes (body TEXT)", wal=True
        ): f"{other} (tables: notes)",
        sqlite_file(directory / "view.db", "CREATE VIEW v AS SELECT 1"): (
            f"{other} (schema objects: v)"
        ),
        text: "it is not an SQLite database",
    }


OPEN_EACH = """
import asyncio, json, sys
from engine import Engine, StoreOpenError

async def main() -> None:
    out = {}
    for path in sys.argv[1:]:
        engine = Engine(path, workers=2)
        try:
            await engine.start()
        except StoreOpenError as exc:
            out[path] = str(exc)
        else:
            out[path] = "opened"
            await engine.stop()
    print(json.dumps(out))

asyncio.run(main())
"""


def test_engine_start_refuses_foreign_files_byte_identical_and_the_process_exits(
    tmp_path: Path,
) -> None:
    expected = foreign_files(tmp_path)
    empty_wal = sqlite_file(tmp_path / "empty-wal.db", wal=True)  # a store being created
    before = {p: digest(p) for p in expected}
    listing = sorted(os.listdir(tmp_path))
    result = subprocess.run(
        [sys.executable, "-c", OPEN_EACH, *map(str, expected), str(empty_wal)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,  # the old code hung here, on the user_version 2 file
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    said = json.loads(result.stdout)
    for path, why in expected.items():
        assert said[str(path)] == (
            f"cannot use {path} as a Taskdeck store: {why}; the file was not touched"
        )
        assert digest(path) == before[path], f"{path.name} was modified"
    assert said[str(empty_wal)] == "opened"  # clearly empty: it becomes a store
    assert sorted(os.listdir(tmp_path)) == listing  # no -wal, -shm or -journal left


def test_cli_status_refuses_foreign_files_in_one_line(tmp_path: Path) -> None:
    expected = foreign_files(tmp_path)
    for name in ("uv1.db", "uv2.db", "notes.txt"):
        path = tmp_path / name
        before = digest(path)
        result = taskdeck("status", "--store", str(path))
        assert result.returncode == 1, result
        assert "Traceback" not in result.stderr
        assert result.stderr.strip().splitlines() == [
            f"taskdeck: error: cannot use {path} as a Taskdeck store: {expected[path]}; "
            "the file was not touched"
        ]
        assert digest(path) == before
    assert not [n for n in os.listdir(tmp_path) if n.endswith(("-wal", "-shm", "-journal"))]


# -- refused opens leave the directory as they found it (item 26) ---------------------


async def filled_store(path: Path, n: int = 10, keys: list[str] | None = None) -> Path:
    engine = Engine(path, workers=0, strict_handlers=False, keys=keys)
    async with engine:
        await engine.enqueue_many([("h", {"i": i, "pad": "p" * 100}) for i in range(n)])
    assert sorted(os.listdir(path.parent)) == [path.name]
    return path


def corrupt_page_of(path: Path, table: str) -> None:
    """Overwrite the root page of ``table`` with random bytes (the header stays valid)."""
    conn = sqlite3.connect(path)
    (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()
    conn.close()
    data = bytearray(path.read_bytes())
    size = int.from_bytes(data[16:18], "big")
    data[(root - 1) * size : root * size] = random.Random(5).randbytes(size)
    path.write_bytes(bytes(data))


async def refused(path: Path, error: type[Exception], message: str, **options: Any) -> None:
    """Engine.start() on ``path`` is refused and leaves the directory and file as they
    were (files that were there, another process's, stay)."""
    listing, before = sorted(os.listdir(path.parent)), digest(path)
    engine = Engine(path, workers=2, strict_handlers=False, **options)
    with pytest.raises(error, match=message):
        await engine.start()
    assert not engine.running
    assert sorted(os.listdir(path.parent)) == listing
    assert digest(path) == before


async def test_refused_opens_leave_no_wal_shm_or_journal_behind(tmp_path: Path) -> None:
    (tmp_path / "secret").mkdir()
    secret = await filled_store(tmp_path / "secret" / "s.db", keys=[generate_key()])
    wrong, missing = "keys do not match data in this store", "is encrypted; start the engine"
    await refused(secret, EncryptionKeyError, wrong, keys=[generate_key()])
    await refused(secret, EncryptionKeyError, missing)
    (tmp_path / "corrupt").mkdir()
    corrupt = await filled_store(tmp_path / "corrupt" / "c.db", n=3000)
    corrupt_page_of(corrupt, "task_counts")
    await refused(corrupt, StoreOpenError, f"cannot open {corrupt}: the database file is corrupt")
    (tmp_path / "header").mkdir()
    header = await filled_store(tmp_path / "header" / "h.db")
    data = bytearray(header.read_bytes())
    data[100:4096] = random.Random(9).randbytes(3996)  # the schema page
    header.write_bytes(bytes(data))
    await refused(header, StoreOpenError, "malformed; the file was not touched")


async def test_refused_opens_keep_the_files_another_process_is_using(tmp_path: Path) -> None:
    """With another connection on the store (its -wal and -shm there), a refused open
    neither leaves files of its own nor removes that connection's."""
    secret = await filled_store(tmp_path / "s.db", keys=[generate_key()])
    other = sqlite3.connect(secret, isolation_level=None)
    try:
        other.execute("SELECT count(*) FROM tasks").fetchone()
        assert sorted(os.listdir(tmp_path)) == ["s.db", "s.db-shm", "s.db-wal"]
        await refused(secret, EncryptionKeyError, "keys do not match", keys=[generate_key()])
        # A store that needs a migration while the other connection holds the write lock:
        # the open gives up at lock_timeout, once, having written nothing.
        old = tmp_path / "v1.db"
        make_v1_store(old)
        holder = sqlite3.connect(old, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            began = time.monotonic()
            await refused(
                old,
                StoreError,
                re.escape(
                    f"the store {old} is locked by another process (waited 0.5 s, "
                    "lock_timeout); nothing was written"
                ),
                lock_timeout=0.5,
                busy_timeout=0.5,
            )
            assert time.monotonic() - began < 2.5
            assert {"v1.db-wal", "v1.db-shm"} <= set(os.listdir(tmp_path))  # the holder's
        finally:
            holder.execute("ROLLBACK")
            holder.close()
    finally:
        other.close()


# -- the store file deleted under a running engine (item 27) ---------------------------


async def test_a_deleted_or_replaced_store_file_refuses_new_work_with_a_critical_finding(
    tmp_path: Path,
) -> None:
    for replace in (False, True):
        path = tmp_path / f"gone-{replace}.db"
        engine = Engine(path, workers=1, strict_handlers=False, **FAST)
        findings = engine.events([EventKind.FINDING])
        async with engine:
            kept = await engine.enqueue("nobody.runs", {"n": 1})
            inode = path.stat().st_ino
            if replace:
                other = tmp_path / "other.db"
                other.write_bytes(b"")
                os.replace(other, path)
                why = f"is replaced by inode {path.stat().st_ino}"
            else:
                os.remove(path)
                why = "is gone"
            message = (
                f"the store file {path} was deleted or replaced while the engine ran (inode "
                f"{inode} {why}); nothing was written; restart the engine on a store"
            )
            attempts = [
                engine.enqueue("nobody.runs", {"n": 2}),
                engine.enqueue_many([("nobody.runs", {"n": 3})]),
                engine.cancel(kept),
            ]
            if not replace:  # reads of a deleted file fail, and say why; a replaced
                attempts.append(engine.get(kept))  # one is still read where it was opened
            for attempt in attempts:
                with pytest.raises(StoreError) as refused:
                    await attempt
                assert str(refused.value) == message
            event = await asyncio.wait_for(anext(aiter(findings)), 10)  # the monitor ticks 1/s
            assert event.message == "critical: Store file deleted or replaced"
            (finding,) = [f for f in engine.snapshot().findings if f.severity == "critical"]
            assert (finding.title, finding.evidence) == ("Store file deleted or replaced", message)
            assert "nothing acknowledged was lost" in finding.suggestion
            assert engine.running  # refusing work, not crashed
        findings.close()
