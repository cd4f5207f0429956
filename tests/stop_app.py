"""An engine for tests/test_stop_bound.py, loaded with ``--app tests.stop_app:engine``:
six workers, slow tasks, a short grace, lock timeout and lease, on the store named by
``TASKDECK_TEST_STORE``."""

from __future__ import annotations

import asyncio
import os

from engine import Engine

SETTINGS = {
    "shutdown_grace": 1.0,
    "lock_timeout": 3.0,
    "busy_timeout": 3.0,
    "lease_ttl": 3.0,
    "lease_renew_interval": 0.5,
    "rescue_interval": 0.2,
    "poll_interval": 0.05,
}

engine = Engine(os.environ.get("TASKDECK_TEST_STORE", "stop-test.db"), workers=6, **SETTINGS)


@engine.task(name="slow")
async def slow(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds
