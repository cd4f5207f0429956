"""A producer process for the unique-key race (tests/test_unique.py, R10).

    python -m tests.unique_worker DB KEY COUNT START

waits until the Unix time ``START``, then enqueues ``COUNT`` tasks with the unique key
``KEY`` at once (one asyncio.gather, so they share group commits) and prints one JSON
line: ``[[id, deduplicated], …]`` in call order.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from engine import Engine


async def main(db: str, key: str, count: int, start: float) -> None:
    engine = Engine(db, workers=0, strict_handlers=False)
    async with engine:
        await asyncio.sleep(max(0.0, start - time.time()))
        ids = await asyncio.gather(
            *(engine.enqueue("race.job", {"n": n}, unique_key=key) for n in range(count))
        )
    print(json.dumps([[str(i), getattr(i, "deduplicated", None)] for i in ids]), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
