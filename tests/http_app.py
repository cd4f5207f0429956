"""An engine for tests/test_http_*.py, loaded with ``--app tests.http_app:engine`` by
``run --headless --http``: two workers on the store named by ``TASKDECK_TEST_STORE``,
a handler that succeeds, one that fails, and one that blocks the event loop.
:func:`register` gives a producer the same handlers (their retries go with the task)."""

from __future__ import annotations

import os
import time

from engine import Engine


async def ok(n: int) -> int:
    return n


async def boom() -> None:
    raise RuntimeError("boom on purpose")


async def block(seconds: float) -> float:
    time.sleep(seconds)  # noqa: ASYNC251 -- blocks the engine's loop on purpose
    return seconds


def register(engine: Engine) -> Engine:
    engine.task(name="ok")(ok)
    engine.task(name="boom", retries=0)(boom)
    engine.task(name="block", retries=0)(block)
    return engine


engine = register(
    Engine(os.environ.get("TASKDECK_TEST_STORE", "http-test.db"), workers=2, poll_interval=0.05)
)
