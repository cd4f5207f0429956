"""The crash harness: an engine in a child process that is killed and restarted.

Child: ``python -m tests.crash_harness DB LEDGER NAME [FAULTS] [ENQUEUE]`` runs an engine
headless on ``DB`` with a deterministic handler that appends ``start``/``done`` lines
to ``LEDGER`` (an O_APPEND file). ``FAULTS`` is a fault plan (``"claim.after_commit:2"``,
see :mod:`engine.faults`); ``ENQUEUE`` makes the child itself enqueue that many tasks
in one ``enqueue_many`` first.

Parent: :func:`soak` enqueues in ``enqueue_many`` batches, SIGKILLs the child at random
moments and restarts it on the same file, then lets it drain; :func:`verify` checks
the invariants and returns a summary (used by the tests and by ``bench/crash_soak.py``).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import Engine, RetryPolicy, TaskState, current_task
from engine.faults import FaultPlan

ROOT = Path(__file__).resolve().parent.parent
RETRIES = 3
WORKERS = 8
LEASE_TTL = 1.0
RESCUE_INTERVAL = 0.2


def outcome(n: int) -> str:
    """What task ``n`` does, the same in every process: 2 % always fail, 10 % fail on
    attempts 1–2, the rest succeed."""
    r = random.Random(n).random()
    return "always" if r < 0.02 else "flaky" if r < 0.12 else "ok"


def expected_state(n: int) -> TaskState:
    return TaskState.FAILED if outcome(n) == "always" else TaskState.SUCCEEDED


def build(db: str, ledger: str, name: str, faults: FaultPlan | None) -> Engine:
    purging = faults is not None and "purge.mid" in faults.at
    engine = Engine(
        db,
        workers=WORKERS,
        name=name,
        faults=faults,
        lease_ttl=LEASE_TTL,
        lease_renew_interval=0.3,
        rescue_interval=RESCUE_INTERVAL,
        poll_interval=0.05,
        # results expire at once only when the test is about dying mid-purge
        result_ttl=0.3 if purging else 86400.0,
        failed_ttl=0.3 if purging else 604800.0,
        cleanup_interval=0.2,
    )
    fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def note(kind: str, n: int, attempt: int) -> None:
        os.write(fd, f"{kind} {n} {attempt} {os.getpid()}\n".encode())

    @engine.task(name="work", retries=RETRIES, retry=RetryPolicy.fixed(0.01))
    async def work(n: int) -> int:
        attempt = current_task().attempt
        note("start", n, attempt)
        await asyncio.sleep(random.Random(n * 7 + attempt).uniform(0, 0.02))
        kind = outcome(n)
        if kind == "always" or (kind == "flaky" and attempt <= 2):
            raise RuntimeError(f"task {n} fails on attempt {attempt} ({kind})")
        note("done", n, attempt)
        return n

    return engine


async def child(db: str, ledger: str, name: str, faults: str, enqueue: int) -> None:
    engine = build(db, ledger, name, FaultPlan.parse(faults) if faults else None)
    async with engine:
        if enqueue:
            ids = await engine.enqueue_many([("work", {"n": n}) for n in range(enqueue)])
            print("enqueued", len(ids), flush=True)
        stopping = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
        print("ready", flush=True)
        await stopping.wait()  # then `async with` stops the engine gracefully


# -- the parent side ----------------------------------------------------------------


def spawn(
    db: Path, ledger: Path, name: str, faults: str = "", enqueue: int = 0
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.crash_harness",
            str(db),
            str(ledger),
            name,
            faults,
            str(enqueue),
        ],
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )


async def ready(proc: subprocess.Popen[str]) -> list[str]:
    """Wait for the child's ``ready`` line; returns what it printed before (or its
    exit, if it died first)."""
    assert proc.stdout is not None
    lines: list[str] = []
    while True:
        line = await asyncio.to_thread(proc.stdout.readline)
        if not line or line.strip() == "ready":
            return lines
        lines.append(line.strip())


def integrity(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def states(db: Path) -> Counter[str]:
    with sqlite3.connect(db, timeout=30) as conn:
        return Counter(dict(conn.execute("SELECT state, count(*) FROM tasks GROUP BY state")))


def held_by_others(db: Path, name: str) -> int:
    """Tasks still `running` under a lease that is not ``name``'s (a dead process's)."""
    with sqlite3.connect(db, timeout=30) as conn:
        row = conn.execute(
            "SELECT count(*) FROM tasks WHERE state = 'running' AND lease_owner != ?", (name,)
        ).fetchone()
        return int(row[0])


@dataclass
class Soak:
    tasks: int
    kills: int = 0
    integrity: list[str] = field(default_factory=list)
    recovery_s: list[float] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    exit_codes: list[int] = field(default_factory=list)


async def wait_recovered(db: Path, name: str, deadline: float) -> float:
    """Seconds until no dead process holds a task any more."""
    t0 = time.monotonic()
    while time.monotonic() < deadline:  # another process's state: polled
        if not held_by_others(db, name):
            break
        await asyncio.sleep(0.05)
    return time.monotonic() - t0


async def drain(db: Path, total: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    done = {TaskState.SUCCEEDED.value, TaskState.FAILED.value}
    while time.monotonic() < deadline:
        counts = states(db)
        if sum(n for s, n in counts.items() if s in done) >= total:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not drained within {timeout:g} s: {dict(states(db))}")


def stop(proc: subprocess.Popen[str]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


async def soak(
    db: Path, ledger: Path, tasks: int, kills: int, seed: int = 1, batch: int = 500
) -> Soak:
    """Enqueue ``tasks`` in batches while a child works them, SIGKILL it ``kills`` times
    at random moments (0.2–2 s into each run), restart it each time, then drain."""
    rng = random.Random(seed)
    out = Soak(tasks)
    producer = Engine(db, workers=0, strict_handlers=False, name="producer")
    batches = [list(range(i, min(tasks, i + batch))) for i in range(0, tasks, batch)]
    per_run = max(1, -(-len(batches) // max(1, kills)))  # spread the enqueues over the runs
    async with producer:
        for run in range(kills + 1):
            name = f"node-{run}"
            proc = spawn(db, ledger, name)
            started = time.monotonic()
            for numbers in batches[run * per_run : (run + 1) * per_run]:
                out.ids += await producer.enqueue_many([("work", {"n": n}) for n in numbers])
            if run > 0:
                out.recovery_s.append(
                    await wait_recovered(db, name, time.monotonic() + 10 * LEASE_TTL + 10)
                )
            if run == kills:
                await drain(db, tasks, timeout=60 + tasks / 50)
                await ready(proc)
                out.exit_codes.append(stop(proc))
                break
            await asyncio.sleep(max(0.0, rng.uniform(0.2, 2.0) - (time.monotonic() - started)))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            out.kills += 1
            out.integrity.append(integrity(db))
    return out


async def verify(db: Path, ledger: Path, ids: list[str], numbers: list[int]) -> dict[str, Any]:
    """The invariants after a drain; returns the summary (raises on a broken one)."""
    engine = Engine(db, workers=0, strict_handlers=False, name="checker")
    lost: list[str] = []
    wrong: list[tuple[str, str]] = []
    worker_lost = 0
    async with engine:
        by_id = {tid: n for tid, n in zip(ids, numbers, strict=True)}
        for tid, n in by_id.items():
            try:
                task = await engine.get(tid)
            except LookupError:
                lost.append(tid)
                continue
            assert task.state in (TaskState.SUCCEEDED, TaskState.FAILED), (tid, task.state)
            assert task.attempts <= RETRIES + 1, (tid, task.attempts)
            terminal = [
                e for e in task.timeline if e.state in (TaskState.SUCCEEDED, TaskState.FAILED)
            ]
            assert len(terminal) == 1, (tid, task.timeline)
            if task.state != expected_state(n):
                if task.error and "worker lost" in task.error:
                    worker_lost += 1  # kills used up its attempts: a legal outcome
                else:
                    wrong.append((tid, task.state.value))
        running = engine.snapshot().counts[TaskState.RUNNING]
    done = Counter(
        int(line.split()[1]) for line in ledger.read_text().splitlines() if line.startswith("done")
    )
    summary = {
        "tasks": len(ids),
        "lost": len(lost),
        "wrong_state": len(wrong),
        "failed_by_kills": worker_lost,
        "left_running": running,
        "duplicates": sum(1 for c in done.values() if c > 1),
        "integrity": integrity(db),
    }
    assert not lost, f"lost tasks: {lost[:10]}"
    assert not wrong, f"tasks in the wrong state: {wrong[:10]}"
    assert running == 0
    assert summary["integrity"] == "ok"
    return summary


async def produce(db: str) -> None:
    """Enqueue one task at a time and print each id the engine acknowledged."""
    engine = Engine(db, workers=0, strict_handlers=False, name=f"producer-{os.getpid()}")
    async with engine:
        n = 0
        while True:
            tid = await engine.enqueue("work", {"n": n})
            sys.stdout.write(f"{tid}\n")
            sys.stdout.flush()
            n += 1


def spawn_producer(db: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.crash_harness", "produce", str(db)],
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )


async def acknowledged_enqueues(db: Path, kills: int, seed: int = 1) -> dict[str, int]:
    """Kill a producer ``kills`` times at random moments; every id it printed must be
    in the store afterwards. Returns how many were printed and how many are missing."""
    rng = random.Random(seed)
    printed: list[str] = []
    for _ in range(kills):
        proc = spawn_producer(db)
        assert proc.stdout is not None
        first = await asyncio.to_thread(proc.stdout.readline)  # it is producing
        printed.append(first.strip())
        await asyncio.sleep(rng.uniform(0.05, 0.5))
        proc.send_signal(signal.SIGKILL)
        rest, _ = await asyncio.to_thread(proc.communicate)
        printed += [line for line in rest.split("\n") if line.strip().isdigit()]
    with sqlite3.connect(db, timeout=30) as conn:
        stored = {str(row[0]) for row in conn.execute("SELECT id FROM tasks")}
    missing = [tid for tid in printed if tid not in stored]
    return {
        "kills": kills,
        "acknowledged": len(printed),
        "missing": len(missing),
        "integrity_ok": int(integrity(db) == "ok"),
    }


if __name__ == "__main__" and sys.argv[1] == "produce":
    asyncio.run(produce(sys.argv[2]))
elif __name__ == "__main__":
    db_arg, ledger_arg, name_arg = sys.argv[1:4]
    faults_arg = sys.argv[4] if len(sys.argv) > 4 else ""
    enqueue_arg = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    asyncio.run(child(db_arg, ledger_arg, name_arg, faults_arg, enqueue_arg))
