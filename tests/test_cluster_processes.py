"""Three node processes on one store run 20,000 tasks; one is SIGKILLed mid-run.

Checked from the stored timelines: every task succeeded once, no task ever ran on
two nodes at overlapping times, and the killed node's tasks were rescued by the
others within the lease plus the rescue interval.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine import Engine, TaskState

ROOT = Path(__file__).resolve().parent.parent
TASKS = 20_000
LEASE = 2.0
RESCUE = 0.2
FAST_NODE = {
    "TASKDECK_LEASE_TTL": str(LEASE),
    "TASKDECK_LEASE_RENEW_INTERVAL": "0.5",
    "TASKDECK_RESCUE_INTERVAL": str(RESCUE),
    "TASKDECK_POLL_INTERVAL": "0.05",
}


def start_node(
    store: str, name: str, workers: int = 4, sleep: float = 0.001
) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        **FAST_NODE,
        "NODE_STORE": store,
        "NODE_NAME": name,
        "NODE_WORKERS": str(workers),
        "NODE_SLEEP": str(sleep),
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "console.cli",
            "run",
            "--headless",
            "--interval",
            "60",
            "--app",
            "tests.node_worker:app",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


async def run_cluster(store: str) -> None:
    producer = Engine(store, workers=0, strict_handlers=False, name="producer")
    async with producer:
        for start in range(0, TASKS, 2000):
            await producer.enqueue_many(
                [("job", {"n": n}) for n in range(start, min(TASKS, start + 2000))]
            )
        nodes = [start_node(store, f"node-{i}") for i in range(3)]
        try:
            killed_at = await _kill_one_mid_run(producer, nodes[1])
            deadline = time.monotonic() + 240
            while True:
                counts = producer.snapshot().counts
                if counts[TaskState.SUCCEEDED] + counts[TaskState.FAILED] >= TASKS:
                    break
                assert time.monotonic() < deadline, f"not finished: {dict(counts)}"
                await asyncio.sleep(0.2)
            await _check_timelines(producer, killed_at)
        finally:
            for node in nodes:
                if node.poll() is None:
                    node.send_signal(signal.SIGTERM)
            for node in nodes:
                _, err = node.communicate(timeout=60)
                if node.returncode not in (0, -signal.SIGKILL):
                    pytest.fail(f"a node exited with {node.returncode}: {err[-2000:]}")


async def _kill_one_mid_run(producer: Engine, victim: subprocess.Popen[str]) -> float:
    deadline = time.monotonic() + 120
    while producer.snapshot().counts[TaskState.SUCCEEDED] < TASKS // 3:
        assert time.monotonic() < deadline, "the nodes did not get going"
        await asyncio.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    return time.time()


async def _check_timelines(producer: Engine, killed_at: float) -> None:
    overlaps, rescued_late, ran = 0, [], 0
    offset = 0
    while offset < TASKS:
        page = await producer.tasks(limit=1000, offset=offset)
        offset += 1000
        for summary in page:
            task = await producer.get(summary.id)
            assert task.state == TaskState.SUCCEEDED, (task.id, task.state, task.error)
            spans: list[tuple[float, float, str]] = []
            entries = list(task.timeline)
            for i, entry in enumerate(entries):
                if entry.state != TaskState.RUNNING:
                    continue
                end = entries[i + 1].at if i + 1 < len(entries) else float("inf")
                spans.append((entry.at, end, entry.by or ""))
                after = entries[i + 1] if i + 1 < len(entries) else None
                if after is not None and "rescued from node-1" in (after.note or ""):
                    rescued_late.append(after.at - killed_at)
            ran += 1
            spans.sort()
            for (_, end_a, by_a), (start_b, _, by_b) in itertools.pairwise(spans):
                # times are stored to ~10 µs (a rescue and the next claim may share
                # one transaction and so one time): overlap means by more than that
                if by_a != by_b and start_b < end_a - 1e-4:
                    overlaps += 1
    assert ran == TASKS
    assert overlaps == 0
    assert rescued_late, "the killed node held no task when it died"
    assert max(rescued_late) <= LEASE + RESCUE + 1.0, max(rescued_late)


def test_three_nodes_run_20000_tasks_and_survive_a_sigkill_sqlite(tmp_path: Path) -> None:
    asyncio.run(run_cluster(str(tmp_path / "cluster.db")))


def test_three_nodes_run_20000_tasks_and_survive_a_sigkill_postgres(pg_url: str) -> None:
    asyncio.run(run_cluster(pg_url))
