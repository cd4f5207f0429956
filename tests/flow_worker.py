"""A child engine process for the cross-process rate-limit test (tests/test_flow_control.py).

    TASKDECK_QUEUE_RATE_LIMITS=emails=20/s python -m tests.flow_worker DB LEDGER UNTIL BACKLOG

runs an engine (settings from ``TASKDECK_*`` variables, as a deployed service reads
them) whose ``mail`` handler (queue ``emails``) appends ``PID TIME`` to the ``LEDGER``
file when it starts, until the Unix time ``UNTIL``. It first enqueues ``BACKLOG``
tasks, then prints ``{"ready": <time>}``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

from engine import Engine, Settings


async def main(db: str, ledger: str, until: float, backlog: int) -> None:
    engine = Engine(db, workers=4, settings=Settings.from_env(), poll_interval=0.05)
    fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    @engine.task(name="mail", queue="emails")
    async def mail(n: int) -> None:
        os.write(fd, f"{os.getpid()} {time.time():.4f}\n".encode())

    async with engine:
        if backlog:
            await engine.enqueue_many([("mail", {"n": n}) for n in range(backlog)])
        print(json.dumps({"ready": time.time()}), flush=True)
        await asyncio.sleep(max(0.0, until - time.time()))
        await engine.stop(grace=0)
    os.close(fd)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])))
