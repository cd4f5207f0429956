"""A graceful stop that ends on time, even when the store takes no writes.

``engine.stop(grace)`` gives running tasks ``grace`` seconds, then interrupts the
rest; saving what they left (results, tasks returned to the queue, the node row)
then gets at most :data:`SAVE_WINDOW` seconds more (``lock_timeout`` if shorter).
Every write still blocked by another process's lock at that deadline gives up. What
could not be written stays ``running`` in the store until its lease expires; the
next start's rescuer puts it back in the queue (at-least-once, as after a crash).
The stop says so truthfully in its :class:`StopReport`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from engine.completions import Completer
from engine.store.base import Store

log = logging.getLogger(__name__)

#: Seconds after the grace period for the stop's last writes.
SAVE_WINDOW = 2.0


def stop_deadline(grace: float, lock_timeout: float) -> float:
    """When a stop that starts now must be done (``time.monotonic()``)."""
    return time.monotonic() + grace + min(lock_timeout, SAVE_WINDOW)


def left(deadline: float) -> float:
    """Seconds until ``deadline`` (0 when it has passed)."""
    return max(0.0, deadline - time.monotonic())


async def save_completions(completer: Completer, deadline: float) -> int:
    """Let the completer write what the tasks left until ``deadline``; returns (and
    logs) how many completions it could not write."""
    unsaved = await completer.flush(deadline)
    if unsaved:
        log.error(
            "gave up saving %d completions at shutdown (%s); their leases will expire",
            unsaved,
            completer.last_error,
        )
    return unsaved


async def mark_stopped(store: Store, node: str, deadline: float) -> None:
    """Mark the node row stopped, if that can be done by ``deadline``."""
    try:
        await asyncio.wait_for(store.node_stopped(node), left(deadline))
    except Exception as exc:  # the store may be what failed; the node's leases cover it
        log.warning("could not mark node %s stopped: %s", node, str(exc) or "no time left")


@dataclass(frozen=True, slots=True)
class StopReport:
    """What a graceful stop saved: ``returned`` running tasks went back to the queue
    (no attempt used); ``left_running`` tasks finished or were interrupted but their
    new state could not be written (``reason``: the store's last refusal), so they
    stay ``running`` in the store until their leases expire and the next start
    rescues them."""

    returned: int = 0
    left_running: int = 0
    reason: str | None = None

    def describe(self) -> str:
        """One line for an operator, e.g. "4 running tasks were returned to the queue"."""
        text = f"{self.returned} running tasks were returned to the queue"
        if not self.left_running:
            return text
        why = self.reason or "the store refused the writes"
        if "locked" in why:
            why = "the store was locked"
        return (
            f"{text}; {self.left_running} could not be written ({why}) and stay running "
            "until their leases expire — the next start rescues them"
        )
