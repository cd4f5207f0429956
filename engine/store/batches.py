"""Bulk operator commands run in transactions of up to ``batch`` rows, one after
another, so that none holds the store for long (both drivers)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable


async def in_batches(step: Callable[[int], Awaitable[tuple[int, int]]], batch: int) -> int:
    """Run ``step(batch)`` (one transaction; it returns how many rows it changed and how
    many it looked at) until a run looks at fewer than ``batch``; the total changed."""
    total = 0
    while True:
        done, seen = await step(batch)
        total += done
        if seen < batch:
            return total
