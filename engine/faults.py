"""Named places where a crash test makes the engine's process die.

Crash tests need the process to die at an exact moment — between a claim's
``UPDATE`` and its ``COMMIT``, halfway through a batch of completions — which a
``kill -9`` from outside cannot hit reliably. A :class:`FaultPlan` given to the
``Engine`` (``Engine(..., faults=FaultPlan({"claim.after_commit": 3}))``) is asked
at each named point and, on the chosen visit, runs its action: by default
``os._exit(137)``, which is what a SIGKILL looks like to the store (no ``finally``,
no rollback, no flush). Without a plan every point is a no-op. Nothing is global:
the plan belongs to one engine.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

#: Every point a plan may name, and where it is.
FAULT_POINTS: Mapping[str, str] = {
    "enqueue_many.mid": "half of a batch of new tasks inserted, before commit",
    "claim.before_commit": "tasks claimed (state, lease, attempt set), before commit",
    "claim.after_commit": "a claim committed, before the tasks reach a worker",
    "complete.before_commit": "completions written, before commit",
    "complete.after_commit": "completions committed, before anyone is told",
    "complete.mid_batch": "half of a batch of completions written, before commit",
    "lease.renew": "inside the lease-renewal transaction",
    "rescue.mid": "one expired lease rescued, others not yet, before commit",
    "purge.mid": "some expired or purged rows deleted, before commit",
    "schema.migrate.mid": "halfway through a schema migration's statements",
}


def crash(point: str) -> None:
    """Die now, as SIGKILL would: no cleanup, no rollback."""
    log.critical("fault plan: exiting at %s", point)
    os._exit(137)


class FaultPlan:
    """Which points fire, on which visit (1 = the first time the point is reached)."""

    def __init__(self, at: Mapping[str, int], action: Callable[[str], None] = crash) -> None:
        unknown = sorted(set(at) - set(FAULT_POINTS))
        if unknown:
            raise ValueError(
                f"unknown fault point(s) {', '.join(unknown)}; known: {', '.join(FAULT_POINTS)}"
            )
        for point, visit in at.items():
            if isinstance(visit, bool) or not isinstance(visit, int) or visit < 1:
                raise ValueError(f"fault point {point}: the visit must be 1 or more; got {visit!r}")
        self.at = dict(at)
        self.action = action
        self.visits: dict[str, int] = {}
        self._lock = threading.Lock()  # points are reached from the loop and the writer thread

    @classmethod
    def parse(cls, spec: str) -> FaultPlan:
        """``"claim.after_commit:3,purge.mid"`` (the visit defaults to 1)."""
        at: dict[str, int] = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            point, _, visit = part.partition(":")
            try:
                at[point] = int(visit) if visit else 1
            except ValueError:
                raise ValueError(
                    f"fault point {point}: the visit must be a number; got {visit!r}"
                ) from None
        return cls(at)

    def reached(self, point: str) -> None:
        """Called at ``point``; runs the action when this is the planned visit."""
        if point not in self.at:
            return
        with self._lock:
            visit = self.visits[point] = self.visits.get(point, 0) + 1
        if visit == self.at[point]:
            self.action(point)


def no_fault(point: str) -> None:
    """The hook used when no plan is given."""


def hook(plan: FaultPlan | None) -> Callable[[str], None]:
    return plan.reached if plan is not None else no_fault
