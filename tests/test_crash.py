"""Crash tests: SIGKILL at random moments and at named points, with the invariants of
tests/crash_harness.py checked after each (the long soak is bench/crash_soak.py)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from pathlib import Path

import pytest

from engine import Engine

from .crash_harness import (
    acknowledged_enqueues,
    drain,
    held_by_others,
    integrity,
    ready,
    soak,
    spawn,
    states,
    stop,
    verify,
)


async def test_random_kills_lose_nothing(tmp_path: Path) -> None:
    db, ledger = tmp_path / "soak.db", tmp_path / "ledger.txt"
    run = await soak(db, ledger, tasks=2000, kills=5, seed=7)
    assert run.kills == 5
    assert run.integrity == ["ok"] * 5  # after every kill
    summary = await verify(db, ledger, run.ids, list(range(2000)))
    assert summary["lost"] == 0 and summary["left_running"] == 0
    # a task in flight at a kill may run twice, never more than the kills allow
    assert summary["duplicates"] <= 5 * 8
    assert max(run.recovery_s) < 10  # lease 1 s + rescue every 0.2 s, on a busy machine
    assert run.exit_codes == [0]


# -- named kill points ----------------------------------------------------------------

#: (point, visit): the visit is late enough that the engine has some work behind it.
NAMED = [
    ("enqueue_many.mid", 1),
    ("claim.before_commit", 2),
    ("claim.after_commit", 2),
    ("complete.before_commit", 2),
    ("complete.after_commit", 2),
    ("complete.mid_batch", 1),
    ("lease.renew", 1),
    ("rescue.mid", 1),
    ("purge.mid", 1),
    ("schema.migrate.mid", 1),
]


async def died(proc: subprocess.Popen[str], timeout: float = 30) -> int:
    return await asyncio.to_thread(proc.wait, timeout)


@pytest.mark.parametrize(("point", "visit"), NAMED, ids=[p for p, _ in NAMED])
async def test_kill_at_a_named_point_loses_nothing(tmp_path: Path, point: str, visit: int) -> None:
    db, ledger = tmp_path / "named.db", tmp_path / "ledger.txt"
    plan = f"{point}:{visit}"
    total = 300
    ids: list[str] = []
    producer = Engine(db, workers=0, strict_handlers=False, name="producer")

    if point == "schema.migrate.mid":  # a brand-new file, killed while it is being created
        assert await died(spawn(db, ledger, "node-0", plan)) == 137
        assert integrity(db) == "ok"
    elif point == "enqueue_many.mid":  # the child's own batch: all of it or none of it
        assert await died(spawn(db, ledger, "node-0", plan, enqueue=total)) == 137
        assert sum(states(db).values()) in (0, total)
        assert integrity(db) == "ok"
    elif point == "rescue.mid":  # leave leases behind, then die while rescuing them
        first = spawn(db, ledger, "node-0")
        async with producer:
            ids += await producer.enqueue_many([("work", {"n": n}) for n in range(total)])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # until the child holds some tasks
            if held_by_others(db, "nobody"):
                break
            await asyncio.sleep(0.01)
        first.send_signal(signal.SIGKILL)
        first.wait()
        assert held_by_others(db, "nobody") > 0, "no task was running at the kill"
        assert await died(spawn(db, ledger, "node-1", plan)) == 137
        assert integrity(db) == "ok"
    else:
        proc = spawn(db, ledger, "node-0", plan)
        async with producer:
            ids += await producer.enqueue_many([("work", {"n": n}) for n in range(total)])
        assert await died(proc) == 137, f"{point} was never reached"
        assert integrity(db) == "ok"
        if point == "purge.mid":  # the purge died before its commit: nothing is gone
            assert sum(states(db).values()) == total

    # Then a clean restart finishes everything, with every invariant holding
    proc = spawn(db, ledger, "node-2")
    if not ids:
        async with Engine(db, workers=0, strict_handlers=False, name="producer") as again:
            ids += await again.enqueue_many([("work", {"n": n}) for n in range(total)])
    await drain(db, total, timeout=60)
    await ready(proc)
    assert stop(proc) == 0
    summary = await verify(db, ledger, ids, list(range(total)))
    assert summary["lost"] == 0 and summary["left_running"] == 0


async def test_acknowledged_enqueues_survive_a_killed_producer(tmp_path: Path) -> None:
    result = await acknowledged_enqueues(tmp_path / "acks.db", kills=20, seed=3)
    assert result["acknowledged"] >= 20
    assert result["missing"] == 0, result
    assert result["integrity_ok"] == 1
