"""Handlers that wait at a known line (marked ``# WAITS HERE``), for the live-stack
tests; a worker process imports them, and tests/stack_node.py runs them on a node."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

from engine import Engine, load_config

#: set by a test to let the thread handler return
RELEASE = threading.Event()


def line_of(marker: str) -> int:
    """The line of this file that carries ``marker`` (after its code)."""
    lines = Path(__file__).read_text(encoding="utf-8").splitlines()
    return next(i for i, text in enumerate(lines, 1) if text.endswith(f"# {marker}"))


async def async_waiter() -> str:
    await asyncio.Event().wait()  # ASYNC WAITS HERE
    return "never"


def thread_waiter() -> str:
    RELEASE.wait(30)  # THREAD WAITS HERE
    return "released"


def process_waiter(seconds: float = 30.0) -> str:
    threading.Event().wait(seconds)  # PROCESS WAITS HERE
    return "woke"


async def process_async_waiter() -> str:
    """An ``async def`` handler on the process executor: its await chain is shown."""
    await asyncio.sleep(30)  # PROCESS ASYNC WAITS HERE
    return "woke"


def app() -> Engine:
    """A node (``taskdeck run --headless --app tests.stack_handlers:app``) on
    ``NODE_STORE`` named ``NODE_NAME``, with ``process_waiter`` as ``wait``."""
    engine = Engine(
        os.environ["NODE_STORE"], workers=2, name=os.environ["NODE_NAME"], config=load_config()
    )
    engine.task(name="wait", executor="process")(process_waiter)
    return engine


async def maybe_stuck(stick: bool = False) -> str:
    """Returns at once, or (``stick``) never: it hangs on one line."""
    if stick:
        await asyncio.Event().wait()  # STUCK HERE
    return "done"
