"""Small asyncio helpers shared by the engine's loops."""

from __future__ import annotations

import asyncio


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Wait until ``event`` is set or ``timeout`` seconds pass; True if it was set."""
    try:
        async with asyncio.timeout(timeout):  # no extra task, unlike wait_for
            await event.wait()
    except TimeoutError:
        return False
    return True
