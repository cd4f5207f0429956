"""Handlers that log, importable by worker processes (see tests/test_task_logs.py)."""

from __future__ import annotations

import logging

from engine import current_task

log = logging.getLogger("images.resize")
log.setLevel(logging.INFO)  # pytest configures the root logger at WARNING


def three_lines(name: str) -> str:
    """Logs three lines: two through ``logging``, one through ``current_task().log``."""
    log.info("resizing %s", name)
    log.warning("%s is large", name)
    current_task().log(f"done with {name}", level="error")
    return name


async def three_lines_async(name: str) -> str:
    return three_lines(name)


def flood(megabytes: int) -> int:
    """Logs ``megabytes`` MB in 1 KB lines."""
    line = "x" * 1000
    for i in range(megabytes * 1000):
        log.info("%d %s", i, line)
    return megabytes


def fails_first(n: int) -> int:
    """Logs its attempt, and fails the first one."""
    attempt = current_task().attempt
    log.info("attempt %d starts", attempt)
    if attempt == 1:
        raise RuntimeError("first attempt fails")
    return n
