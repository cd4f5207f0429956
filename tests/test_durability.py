"""Data survives: restarts, kill -9 mid-run, and encryption at rest."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from engine import EncryptionKeyError, Engine, PayloadDecodeError, TaskState, generate_key
from engine.codec import Codec

from .conftest import EngineFactory, until

ROOT = Path(__file__).resolve().parent.parent


async def test_tasks_and_results_survive_a_restart(make_engine: EngineFactory) -> None:
    producer = make_engine(workers=0)

    @producer.task(name="double")
    async def double(x: int) -> int:
        return 2 * x

    async with producer:
        ids = await producer.enqueue_many([("double", {"x": i}) for i in range(20)])

    worker = make_engine(workers=4)
    worker.task(name="double")(double.handler.fn)
    async with worker:
        await worker.drain(timeout=10)

    reader = make_engine(workers=0)
    async with reader:
        records = [await reader.get(i) for i in ids]
    assert [r.result for r in records] == [2 * i for i in range(20)]
    assert all(r.state == TaskState.SUCCEEDED for r in records)


def _counts(db: Path) -> dict[str, int]:
    conn = sqlite3.connect(db, timeout=10)
    try:
        return dict(conn.execute("SELECT state, count(*) FROM tasks GROUP BY state").fetchall())
    finally:
        conn.close()


def _integrity(db: Path) -> str:
    conn = sqlite3.connect(db, timeout=10)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def _spawn(db: Path, ledger: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.crash_worker", str(db), str(ledger)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


async def test_kill_9_mid_run_then_restart_loses_nothing(tmp_path: Path) -> None:
    db, ledger = tmp_path / "crash.db", tmp_path / "ledger.txt"
    total = 600
    producer = Engine(db, workers=0, strict_handlers=False)
    async with producer:
        await producer.enqueue_many([("work", {"n": n}) for n in range(total)])

    # Given a worker process that is killed with SIGKILL in the middle of the run
    proc = _spawn(db, ledger)
    await until(lambda: _counts(db).get("succeeded", 0) >= total // 4, 30, "a quarter done")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    mid = _counts(db)
    assert mid.get("succeeded", 0) < total, "the kill came too late to test anything"
    assert _integrity(db) == "ok"

    # When it restarts on the same file and drains
    proc = _spawn(db, ledger)
    try:
        await until(lambda: _counts(db).get("succeeded", 0) >= total, 60, "all tasks done")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    # Then every task finished, none is left running, the file is intact
    final = _counts(db)
    assert final == {"succeeded": total}, final
    assert _integrity(db) == "ok"
    starts = Counter(
        int(line.split()[1]) for line in ledger.read_text().splitlines() if line.startswith("start")
    )
    assert set(starts) == set(range(total))
    duplicates = sum(1 for n, c in starts.items() if c > 1)
    assert duplicates <= 8 + 8  # at most the tasks in flight at the kill (8 workers) run twice


# -- encryption at rest ---------------------------------------------------------------


def _raw_bytes(db: Path) -> bytes:
    data = db.read_bytes()
    wal = Path(f"{db}-wal")
    return data + (wal.read_bytes() if wal.exists() else b"")


async def test_encrypted_payloads_results_and_errors_are_not_on_disk(db_path: Path) -> None:
    key = generate_key()
    engine = Engine(db_path, workers=2, encryption_key=key)

    @engine.task(name="secret", retries=0)
    async def secret(card: str, fail: bool = False) -> dict[str, str]:
        if fail:
            raise ValueError(f"declined ERR-MARKER-{card}")
        return {"token": f"RESULT-MARKER-{card}"}

    async with engine:
        ok = await engine.enqueue("secret", {"card": "PAYLOAD-MARKER-4111"})
        bad = await engine.enqueue("secret", {"card": "9999", "fail": True}, queue="billing")
        assert (await engine.wait(ok, timeout=5)).result == {
            "token": "RESULT-MARKER-PAYLOAD-MARKER-4111"
        }
        assert "ERR-MARKER" in ((await engine.wait(bad, timeout=5)).error or "")
        raw = _raw_bytes(db_path)
        # metadata stays queryable
        assert [r.id for r in await engine.tasks(queue="billing")] == [bad]
        assert engine.snapshot().encrypted
    raw += _raw_bytes(db_path)
    for marker in (b"PAYLOAD-MARKER", b"RESULT-MARKER", b"ERR-MARKER"):
        assert marker not in raw
    assert b"billing" in raw and b"secret" in raw


async def test_key_rotation_reads_old_rows_and_writes_with_the_new_key(db_path: Path) -> None:
    old, new = generate_key(), generate_key()
    first = Engine(db_path, workers=0, strict_handlers=False, encryption_key=old)
    async with first:
        before = await first.enqueue("h", {"v": "old row"})
    rotated = Engine(db_path, workers=0, strict_handlers=False, keys=[new, old])
    async with rotated:
        assert (await rotated.get(before)).payload == {"v": "old row"}
        after = await rotated.enqueue("h", {"v": "new row"})
    conn = sqlite3.connect(db_path)
    stored = conn.execute("SELECT payload FROM tasks WHERE id = ?", (int(after),)).fetchone()[0]
    assert Codec([new]).decode(stored) == {"v": "new row"}
    with pytest.raises(PayloadDecodeError, match="no key given can decrypt"):
        Codec([old]).decode(stored)


@pytest.mark.parametrize("keys", ["wrong", "missing"])
async def test_wrong_or_missing_key_is_refused_and_nothing_is_touched(
    db_path: Path, keys: str
) -> None:
    first = Engine(db_path, workers=0, strict_handlers=False, encryption_key=generate_key())
    async with first:
        await first.enqueue("h", {"v": 1})
    digest = hashlib.sha256(db_path.read_bytes()).hexdigest()
    mtime = os.stat(db_path).st_mtime_ns
    other = Engine(
        db_path,
        workers=2,
        strict_handlers=False,
        encryption_key=generate_key() if keys == "wrong" else None,
    )
    expected = "keys do not match data in this store" if keys == "wrong" else "is encrypted; start"
    with pytest.raises(EncryptionKeyError, match=expected):
        await other.start()
    assert not other.running
    assert hashlib.sha256(db_path.read_bytes()).hexdigest() == digest
    assert os.stat(db_path).st_mtime_ns == mtime
