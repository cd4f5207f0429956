"""Module-level handlers for the process executor tests (a worker process imports them)."""

from __future__ import annotations

import os
import time

from engine import current_task


def cpu_square(n: int) -> dict[str, int]:
    ctx = current_task()
    ctx.progress(0.5, "halfway")
    time.sleep(0.2)  # long enough for the parent to see the progress
    return {"square": n * n, "pid": os.getpid(), "attempt": ctx.attempt}


def sleepy(seconds: float) -> str:
    time.sleep(seconds)
    return "woke up"


def fails_until(attempt_ok: int) -> int:
    attempt = current_task().attempt
    if attempt < attempt_ok:
        raise ConnectionError(f"attempt {attempt} fails")
    return attempt


def returns_a_set() -> object:
    return {1, 2}


def dies() -> None:
    os._exit(3)


def waits_for_soft_timeout() -> str:
    ctx = current_task()
    if ctx.soft_timeout_event.wait(5):
        return "wrapped up after soft timeout"
    return "never warned"


async def async_in_process(x: int) -> int:
    return x + 1


_KEPT: list[bytes] = []


def leaks(mb: int = 5) -> int:
    """Keeps ``mb`` MB more on every call, as a handler with a module-level cache would."""
    _KEPT.append(b"x" * (mb << 20))
    return os.getpid()


def pid(n: int) -> int:
    return os.getpid()
