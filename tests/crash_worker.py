"""A worker process for crash tests: ``python -m tests.crash_worker DB LEDGER``.

It runs an engine with short leases until it is killed, and appends a line to
the ledger (an O_APPEND file) whenever a handler starts and finishes.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys

from engine import Engine, RetryPolicy, current_task


def build(db: str, ledger: str, workers: int = 8) -> Engine:
    engine = Engine(
        db,
        workers=workers,
        lease_ttl=1.0,
        lease_renew_interval=0.3,
        rescue_interval=0.2,
        poll_interval=0.05,
    )
    fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def note(kind: str, n: int) -> None:
        os.write(fd, f"{kind} {n} {current_task().attempt} {os.getpid()}\n".encode())

    @engine.task(name="work", retries=3, retry=RetryPolicy.fixed(0.01))
    async def work(n: int) -> int:
        note("start", n)
        await asyncio.sleep(random.Random(n).uniform(0, 0.02))
        note("done", n)
        return n

    return engine


async def main(db: str, ledger: str) -> None:
    engine = build(db, ledger)
    async with engine:
        print("ready", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
