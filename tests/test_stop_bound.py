"""A graceful stop ends on time when another program holds the store's write lock
(issue 13, item 20).

SIGTERM with grace 3 s and lock timeout 3 s used to take 30 s (15 minutes and more
with the defaults), and the engine then said "0 running tasks were returned to the
queue" while six rows stayed ``running``. Now the stop takes the grace period plus
at most ``SAVE_WINDOW`` seconds, and says what it could not write; the next start's
rescuer finishes those tasks.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from engine import Engine, TaskState
from engine.shutdown import SAVE_WINDOW

from .conftest import ROOT, until
from .stop_app import SETTINGS


def states(db: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return dict(conn.execute("SELECT state, count(*) FROM tasks GROUP BY state").fetchall())
    finally:
        conn.close()


async def test_sigterm_while_another_program_holds_the_lock_stops_in_grace_plus_a_bound(
    tmp_path: Path,
) -> None:
    db = tmp_path / "tasks.db"
    producer = Engine(db, workers=0, strict_handlers=False)
    async with producer:
        await producer.enqueue_many([("slow", {"seconds": 30}) for _ in range(6)])
    command = ["run", "--headless", "--app", "tests.stop_app:engine", "--interval", "0.2"]
    node = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "console.cli",
        *command,
        cwd=ROOT,
        env={**os.environ, "TASKDECK_TEST_STORE": str(db)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    holder = sqlite3.connect(db, isolation_level=None)
    try:
        await until(lambda: states(db).get("running") == 6, 30, "six running tasks")
        holder.execute("BEGIN EXCLUSIVE")  # another program's long write transaction
        signalled = time.monotonic()
        node.send_signal(signal.SIGTERM)
        _, raw = await asyncio.wait_for(node.communicate(), 60)
        took = time.monotonic() - signalled
    finally:
        if node.returncode is None:
            node.kill()
            await node.wait()
        if holder.in_transaction:
            holder.execute("ROLLBACK")
        holder.close()
    err = raw.decode()
    assert node.returncode == 0, err
    grace = SETTINGS["shutdown_grace"]
    assert took < grace + SAVE_WINDOW + 1.5, f"stop took {took:.1f} s"  # was 7.5 s and more
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        "stopped; 0 running tasks were returned to the queue; 6 could not be written (the "
        "store was locked) and stay running until their leases expire — the next start "
        "rescues them"
    )
    assert states(db) == {"running": 6}  # truthfully left as they were

    # The next start rescues them once their leases expire, and they run to the end
    engine = Engine(db, workers=6, **{**SETTINGS, "lease_ttl": 30.0})

    @engine.task(name="slow")
    async def quick(seconds: float) -> float:
        return seconds

    async with engine:
        await engine.drain(timeout=30)
        page = await engine.tasks(limit=10)
    assert [t.state for t in page] == [TaskState.SUCCEEDED] * 6
    assert all(t.attempts == 2 for t in page)  # the interrupted attempt counted, as a crash's
