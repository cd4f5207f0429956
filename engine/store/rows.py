"""Records from result rows, for the reads every backend shares (the backends
select the same columns in the same order)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from engine.model import NodeInfo, ScheduleInfo

Row = Sequence[Any]


def schedule(r: Row) -> ScheduleInfo:
    """name, handler, queue, every, cron, tz, next_run, last_run, last_task, paused,
    and the last task's state (NULL once it was purged)."""
    return ScheduleInfo(
        name=r[0],
        handler=r[1],
        queue=r[2],
        every=r[3],
        cron=r[4],
        tz=r[5],
        next_run=r[6],
        last_run=r[7],
        last_task_id=None if r[8] is None else str(r[8]),
        last_state=r[10] if r[10] is not None else ("expired" if r[8] else None),
        paused=bool(r[9]),
    )


def node(r: Row, silent_since: float) -> NodeInfo:
    """A node row; an alive node not seen since ``silent_since`` is reported dead."""
    return NodeInfo(
        id=r[0],
        host=r[1],
        pid=r[2],
        version=r[3],
        started_at=r[4],
        last_seen=r[5],
        state="dead" if r[6] == "alive" and r[5] < silent_since else r[6],
        workers=r[7],
        busy=r[8],
        snapshot=json.loads(r[9] or "{}"),
    )
