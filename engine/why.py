"""Why a task has not started: the answer of ``engine.diagnose.why(task_id)``.

Each reason has a code (for programs), one line of text (for people) and its
numbers in ``details``. The reasons are checked in the order the claim applies
them, so the line names what holds the task back first:

=================  ==========================================================
code               meaning
=================  ==========================================================
``not_due``        scheduled: not due until a time (``run_at``)
``due``            scheduled and due: queued by the next promotion
``workflow``       a workflow step waiting for an earlier step (#ID)
``all_paused``     everything is paused (``pause_all``): who, when, why
``queue_paused``   its queue is paused (who and when, from the audit trail)
``no_node``        no alive node works on the store
``unserved``       no alive node with workers runs its handler
``concurrency``    the queue's concurrency limit: n of n running
``rate_limit``     a rate limit's bucket is empty: next token in N s
``no_free_worker`` every worker is busy: position in the queue, estimated start
``starting``       workers are free: it starts at the next claim
``buffered``       claimed and held in the ready buffer of a node, not started
``running``        it is running (not waiting)
``unique_key``     failed or cancelled; a retry would be refused: key held by #ID
``finished``       succeeded, failed or cancelled (not waiting)
=================  ==========================================================
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

CODES = (
    "not_due", "due", "workflow", "all_paused", "queue_paused", "no_node", "unserved",
    "concurrency", "rate_limit", "no_free_worker", "starting", "buffered", "running",
    "unique_key", "finished",
)  # fmt: skip


SHORT = {
    "due": "due now", "all_paused": "all paused", "queue_paused": "queue paused",
    "no_node": "no node", "unserved": "no node runs it", "unique_key": "key held",
    "starting": "next claim",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class WhyWaiting:
    """Why task ``task_id`` (in ``state``) has not started: ``code`` (see :data:`CODES`),
    ``text`` (one line) and the numbers behind it in ``details``."""

    task_id: str
    state: str
    code: str
    text: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def waiting(self) -> bool:
        """Whether the task waits to start (False: running or finished)."""
        return self.code not in ("running", "finished", "unique_key")

    @property
    def short(self) -> str:
        """A few words for a table cell: ``limit 2/2``, ``rate 12s``, ``#4 ~40 s``."""
        d, code = self.details, self.code
        if code == "no_free_worker":
            eta = d.get("estimated_start_in")
            return f"#{d['position']} " + (f"~{span(eta)}" if eta is not None else "busy")
        if code == "not_due":
            return f"due in {span(d['in_seconds'])}"
        if code == "workflow":
            return f"after #{d['waiting_for']}" if "waiting_for" in d else "step"
        if code == "concurrency":
            return f"limit {d['running']}/{d['limit']}"
        if code == "rate_limit":
            return f"rate {d['next_token_in']:.0f}s"
        if code == "buffered":
            return f"held {d['node']}"
        return SHORT.get(code, "")

    def as_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "state": self.state,
            "code": self.code,
            "text": self.text,
            "waiting": self.waiting,
            "details": self.details,
        }


def at_text(when: float) -> str:
    """A time as the CLI prints times (local, to the second)."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when))


def span(seconds: float) -> str:
    """``45 s``, ``12 min``, ``3.5 h``, ``2.0 d``."""
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def who_when(by: str | None, at: float | None, now: float) -> str:
    """`` by alice@host 5 min ago`` (empty parts left out)."""
    text = f" by {by}" if by else ""
    if at is not None:
        text += f" {span(now - at)} ago"
    return text
