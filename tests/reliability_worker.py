"""Handlers for the multi-process reliability tests (tests/test_reliability_processes.py).

The engine processes are the product's own headless runner::

    RW_DB=… RW_LEDGER=… python -m console.cli run --headless --json \
        --app tests.reliability_worker:app

``app`` reads the store (``RW_DB``), the ledger (``RW_LEDGER``) and the worker
count (``RW_WORKERS``) from the environment, and settings from ``TASKDECK_*``
variables, as a deployed service would. Every handler appends
``start|done HANDLER N ATTEMPT PID TIME`` lines to the ledger, an ``O_APPEND``
file, so the tests can tell which process ran what and when.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

from engine import Engine, RetryPolicy, current_task
from engine.settings import Settings


def build(db: str | Path, ledger: str | Path, workers: int = 8) -> Engine:
    """An engine with the test handlers; ``workers=0`` makes a producer."""
    engine = Engine(db, workers=workers, settings=Settings.from_env())
    fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def note(kind: str, handler: str, n: int) -> None:
        line = f"{kind} {handler} {n} {current_task().attempt} {os.getpid()} {time.time():.3f}\n"
        os.write(fd, line.encode())

    @engine.task(name="nap", retries=5, retry=RetryPolicy.fixed(0.01))
    async def nap(n: int, seconds: float = 0.1) -> dict[str, int]:
        note("start", "nap", n)
        await asyncio.sleep(seconds)
        note("done", "nap", n)
        return {"n": n, "pid": os.getpid(), "attempt": current_task().attempt}

    @engine.task(name="hog", retries=3)
    async def hog(n: int, seconds: float) -> dict[str, int]:
        """Blocks its event loop on purpose (a handler calling blocking code): while
        it runs nothing else in its process does, so when the process is resumed
        after SIGSTOP the late result is handed over before any lease renewal can
        notice that the task was taken over — the zombie's completion does reach
        the store, and the fencing there must drop it."""
        note("start", "hog", n)
        time.sleep(seconds)  # noqa: ASYNC251 - blocking the loop is the point here
        note("done", "hog", n)
        return {"n": n, "pid": os.getpid(), "attempt": current_task().attempt}

    @engine.task(name="poison", retries=2)
    async def poison(n: int) -> None:
        """Kills its own process on every attempt, half a second in (meanwhile the
        other workers get on with their tasks)."""
        note("start", "poison", n)
        await asyncio.sleep(0.5)
        os._exit(77)

    @engine.task(name="stuck", executor="thread", timeout=0.5, retries=0)
    def stuck(n: int) -> None:
        """Never returns: the thread cannot be killed, only abandoned."""
        note("start", "stuck", n)
        threading.Event().wait()

    @engine.task(name="nap_thread", executor="thread", retries=0)
    def nap_thread(n: int, seconds: float) -> int:
        note("start", "nap_thread", n)
        time.sleep(seconds)
        note("done", "nap_thread", n)
        return n

    return engine


def app() -> Engine:
    """The engine for ``--app tests.reliability_worker:app``, configured from the environment."""
    return build(
        os.environ["RW_DB"], os.environ["RW_LEDGER"], int(os.environ.get("RW_WORKERS", "8"))
    )
