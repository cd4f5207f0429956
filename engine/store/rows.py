"""Records from result rows, for the reads every backend shares (the backends
select the same columns in the same order)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from engine.codec import Codec
from engine.model import (
    NodeInfo,
    ScheduleInfo,
    TaskRecord,
    TaskState,
    TimelineEntry,
    WorkflowRecord,
    WorkflowStep,
    parse_timeline,
)
from engine.store.base import StoredSchedule

Row = Sequence[Any]


def task(codec: Codec, row: Row, timeline: str | None = None) -> TaskRecord:
    """A task from the columns every backend's task reads select (see the stores);
    ``timeline`` is the stored timeline text, when it was read."""
    decode = codec.decode
    return TaskRecord(
        id=str(row[0]),
        handler=row[1],
        queue=row[2],
        priority=row[3],
        state=TaskState(row[4]),
        attempts=row[5],
        max_retries=row[6],
        payload=decode(row[7]),
        result=decode(row[8]),
        error=codec.decode_text(row[9]),
        progress=row[10],
        progress_message=codec.decode_text(row[11]),
        created_at=row[12],
        run_at=None if row[21] else row[13],
        started_at=row[14],
        finished_at=row[15],
        worker=row[16],
        timeline=() if timeline is None else _open_notes(parse_timeline(timeline, row[12]), codec),
        unique_key=row[17],
        webhook=codec.decode_text(row[18]),
        workflow_id=None if row[19] is None else str(row[19]),
        step=row[20],
        waiting=bool(row[21]),
    )


def _open_notes(entries: tuple[TimelineEntry, ...], codec: Codec) -> tuple[TimelineEntry, ...]:
    """Timeline notes an operator wrote (a cancel reason) are sealed with a key."""
    if not any(e.note and codec.is_sealed(e.note) for e in entries):
        return entries
    return tuple(
        replace(e, note=codec.unseal(e.note)) if e.note and codec.is_sealed(e.note) else e
        for e in entries
    )


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


def node_params(node: NodeInfo, now: float, codec: Codec) -> tuple[object, ...]:
    """A node's row as the heartbeat saves it: id, host, pid, version, started,
    last seen (``now``), workers, busy, snapshot (JSON; sealed with a key: its
    findings quote handlers' error messages)."""
    return (
        node_handlers(node),  # first: the column came later (schema 4)
        node.id,
        node.host,
        node.pid,
        node.version,
        node.started_at,
        now,
        node.workers,
        node.busy,
        codec.seal(json.dumps(dict(node.snapshot), separators=(",", ":"))),
    )


def node(r: Row, silent_since: float, codec: Codec) -> NodeInfo:
    """A node row; an alive node not seen since ``silent_since`` is reported dead."""
    return NodeInfo(
        handlers=None if r[10] is None else tuple(json.loads(r[10])),
        id=r[0],
        host=r[1],
        pid=r[2],
        version=r[3],
        started_at=r[4],
        last_seen=r[5],
        state="dead" if r[6] == "alive" and r[5] < silent_since else r[6],
        workers=r[7],
        busy=r[8],
        snapshot=json.loads(codec.unseal(r[9]) if r[9] else "{}"),
    )


def workflow(
    workflow_id: int, kind: str, created_at: float, steps: Sequence[Row]
) -> WorkflowRecord:
    """A workflow from its head and its step rows: id, handler, state, step, waiting,
    receives, started_at, finished_at (a group's callback is the step that receives)."""
    return WorkflowRecord(
        str(workflow_id),
        kind,  # type: ignore[arg-type]  # the schema allows only chain and group
        created_at,
        tuple(
            WorkflowStep(
                index=step,
                task_id=str(task_id),
                handler=handler,
                state=TaskState(state),
                waiting=bool(waiting),
                callback=kind == "group" and receives is not None,
                started_at=started_at,
                finished_at=finished_at,
            )
            for task_id, handler, state, step, waiting, receives, started_at, finished_at in steps
        ),
    )


def schedule_unchanged(row: Row | None, wanted: StoredSchedule, codec: Codec) -> bool:
    """Whether a stored schedule (handler, payload, queue, priority, retries, every,
    cron, tz) already is what the code defines (payloads compared as JSON: sealing
    is randomised)."""
    if row is None:
        return False
    same_payload = json.loads(codec.unseal(row[1])) == json.loads(wanted.payload_json)
    defined = (wanted.handler, wanted.queue, wanted.priority, wanted.retries)
    return same_payload and (row[0], *row[2:]) == (*defined, wanted.every, wanted.cron, wanted.tz)


def node_handlers(node: NodeInfo) -> str | None:
    """The handlers column: the node's handler names as a JSON list (NULL: unknown)."""
    if node.handlers is None:
        return None
    return json.dumps(list(node.handlers), separators=(",", ":"))
