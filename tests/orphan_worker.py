"""An engine whose process-executor tasks are killed with it (tests/test_orphans.py).

``python -m tests.orphan_worker DB LEDGER TASKS SECONDS``: enqueues TASKS ``spin``
tasks of SECONDS each, runs them (one worker process each) until it is killed; prints
``idle`` once they all finished (the worker processes then wait for more). Each
``spin`` appends ``start PID`` to LEDGER, then keeps a CPU busy (a worker process
that does not read its pipe while it works).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

from engine import Engine


def spin(ledger: str, seconds: float) -> int:
    fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.write(fd, f"start {os.getpid()}\n".encode())
    os.close(fd)
    deadline = time.monotonic() + seconds
    count = 0
    while time.monotonic() < deadline:
        count += 1
    return count


async def main(db: str, ledger: str, tasks: int, seconds: float) -> None:
    engine = Engine(db, workers=tasks)
    engine.task(name="spin", executor="process", retries=0)(spin)
    async with engine:
        ids = [
            await engine.enqueue("spin", {"ledger": ledger, "seconds": seconds})
            for _ in range(tasks)
        ]
        for task_id in ids:
            await engine.wait(task_id)
        print("idle", flush=True)
        await asyncio.Event().wait()  # until killed


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
