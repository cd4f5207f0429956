"""A child engine process for the multi-process periodic test (tests/test_periodic.py).

    python -m tests.schedule_worker DB EVERY UNTIL

runs an engine with one ``@engine.periodic(every=EVERY)`` handler named ``tick`` on
the store ``DB`` until the Unix time ``UNTIL``. It prints ``ready`` once started and,
at the end, one JSON line: how many runs this process enqueued (its
``schedule_fired`` events) and its node name.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time

from engine import Engine, EventKind


def build(db: str, every: float) -> Engine:
    engine = Engine(db, workers=2, poll_interval=0.05, shutdown_grace=1.0)

    @engine.periodic(every=every, name="tick")
    async def tick() -> None:
        pass

    return engine


async def main(db: str, every: float, until: float) -> None:
    engine = build(db, every)
    fired = 0
    async with engine:
        events = engine.events([EventKind.SCHEDULE_FIRED])
        print("ready", flush=True)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, until - time.time())):
                async for _ in events:
                    fired += 1
    print(json.dumps({"fired": fired, "node": engine.node}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], float(sys.argv[2]), float(sys.argv[3])))
