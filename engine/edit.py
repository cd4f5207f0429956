"""``engine.edit(task_id, ...)``: change a task that is not running — its payload,
priority, queue, retries or (scheduled) due time — checked exactly as ``enqueue``
checks them (the same errors), and optionally queue a failed or cancelled one again
(save and retry).

The change is one transaction that also appends a timeline line holding the old and
the new values (sealed with the key, like the payload, when there is one). A running
task is refused (it cannot change under its worker), and so is a succeeded one."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from functools import partial
from typing import Any

from engine.audit import Audit, check_note
from engine.checks import parse_task_id
from engine.codec import Codec, to_json
from engine.commands import Commands
from engine.enqueue import Preparer
from engine.errors import InvalidTransition
from engine.model import TaskRecord, TaskState
from engine.state import EngineState
from engine.store import edit as plans
from engine.store.base import Store

EDITABLE_STATES = (TaskState.QUEUED, TaskState.SCHEDULED, TaskState.FAILED, TaskState.CANCELLED)
MAX_RETRIES = 100
SHOWN = 2000  #: characters of an old or new payload the timeline keeps


class Editor:
    """Carries out ``engine.edit``."""

    def __init__(
        self,
        state: EngineState,
        store: Store,
        codec: Codec,
        preparer: Preparer,
        commands: Commands,
        audit: Audit,
    ) -> None:
        self._state, self._store, self._codec, self._preparer = state, store, codec, preparer
        self._commands, self._audit = commands, audit

    async def edit(
        self,
        task_id: str | int,
        *,
        payload: Mapping[str, Any] | None = None,
        priority: int | str | None = None,
        queue: str | None = None,
        retries: int | None = None,
        run_at: dt.datetime | None = None,
        retry: bool = False,
        note: str | None = None,
    ) -> TaskRecord:
        tid = parse_task_id(task_id)
        text = check_note(note)
        self._state.require_writable("edit")
        record = await self._store.get(tid)
        refused = _refusal(record, run_at, retry)
        if refused is not None:
            raise refused
        new = self._preparer.prepare(
            record.handler,
            record.payload if payload is None else payload,
            priority=priority, queue=queue, run_at=run_at,
        )  # fmt: skip
        changes: dict[str, Any] = {}
        said: list[str] = []
        if payload is not None and to_json(payload) != to_json(record.payload):
            changes["payload"] = new.payload
            said.append(f"payload {_short(record.payload)} → {_short(payload)}")
        if priority is not None and new.priority != record.priority:
            changes["priority"] = new.priority
            said.append(f"priority {record.priority} → {new.priority}")
        if queue is not None and new.queue != record.queue:
            changes["queue"] = new.queue
            said.append(f"queue {record.queue} → {new.queue}")
        if retries is not None:
            n = _retries(retries)
            changes["retries"] = n
            said.append(f"retries {record.max_retries} → {n}")
        if run_at is not None and new.run_at != record.run_at:
            changes["run_at"] = new.run_at
            said.append(f"run at {_when(record.run_at)} → {_when(new.run_at)}")
        by = self._state.actor.who
        line = f"edited by {by}: " + ("; ".join(said) or "nothing changed")
        if text:
            line += f" ({text})"
        async with self._audit.action("edit", f"task {tid}", tid, note=text) as outcome:
            if changes:
                step = partial(
                    plans.edit, task_id=tid, state=record.state.value, changes=changes, by=by,
                    note=self._codec.seal(line),
                )  # fmt: skip
                result = await self._store.run_plan(step)
                if isinstance(result, Exception):
                    raise result
            outcome.text = "; ".join(x.split(" ", 1)[0] for x in said) or "nothing changed"
        if retry:
            await self._commands.retry(tid)
        elif changes:
            self._state.kick()
        return await self._store.get(tid)


def _refusal(record: TaskRecord, run_at: Any, retry: bool) -> Exception | None:
    tid = record.id
    if record.state == TaskState.RUNNING:
        return InvalidTransition(
            f"task {tid} is running: a running task cannot be edited (its worker has its "
            "payload); cancel it, or wait for it to finish, then edit it"
        )
    if record.state not in EDITABLE_STATES:
        return InvalidTransition(
            f"task {tid} is {record.state}: only queued, scheduled, failed or cancelled "
            "tasks can be edited"
        )
    if run_at is not None and record.state != TaskState.SCHEDULED:
        return InvalidTransition(
            f"task {tid} is {record.state}: run_at changes a scheduled task's due time; "
            "a task that is not scheduled cannot be postponed (enqueue a new one)"
        )
    if retry and record.state not in (TaskState.FAILED, TaskState.CANCELLED):
        return InvalidTransition(
            f"task {tid} is {record.state}: retry (save and retry) is for failed or cancelled tasks"
        )
    return None


def _retries(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_RETRIES:
        raise ValueError(f"retries must be a whole number from 0 to {MAX_RETRIES}; got {value!r}")
    return value


def _short(payload: Any) -> str:
    text = to_json(payload)
    return text if len(text) <= SHOWN else text[: SHOWN - 1] + "…"


def _when(at: float | None) -> str:
    if at is None:
        return "now"
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
