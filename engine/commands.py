"""Operator commands as a part: cancel, reprioritize, retry, purge, workers, settings,
pausing queues, draining, and the commands other nodes send here."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

from engine.aio import wait_event
from engine.audit import Audit, check_note
from engine.checks import check_queue_name, check_seconds, parse_task_id, storable_id
from engine.codec import Codec
from engine.errors import InvalidTransition
from engine.events import EventBus, EventKind
from engine.model import TERMINAL_STATES, NodeCommand, TaskState, parse_priority
from engine.nodes import Nodes
from engine.reads import parse_state
from engine.saved_settings import SavedSettings
from engine.state import EngineState
from engine.store.base import Store
from engine.waiters import Waiters
from engine.workers import check_workers

States = TaskState | str | Sequence[TaskState | str]

#: How long a reprioritize waits for the node holding the task to answer (its next
#: heartbeat or two).
RELAY_WAIT = 5.0


def _states(state: States) -> list[TaskState]:
    raw = [state] if isinstance(state, str | TaskState) else list(state)
    return [s for s in (parse_state(r) for r in raw) if s is not None]


class Commands:
    """What an operator (or a finding's action, or another node) asks this engine to do."""

    def __init__(
        self,
        state: EngineState,
        store: Store,
        codec: Codec,
        bus: EventBus,
        waiters: Waiters,
        nodes: Nodes,
        node: str,
        saved: SavedSettings,
        audit: Audit,
    ) -> None:
        self._state = state
        self._audit = audit
        self._saved = saved
        self._store = store
        self._codec = codec
        self._bus = bus
        self._waiters = waiters
        self._nodes = nodes
        self._node = node

    async def cancel(self, task_id: str | int, reason: str | None = None) -> TaskState:
        """Cancel a queued, scheduled or running task; returns its previous state."""
        tid = parse_task_id(task_id)
        self._state.require_writable("cancel")
        note = reason or "cancelled by operator"
        pool, by, sealed = self._state.pool, self._state.actor.who, self._codec.seal(note)
        async with self._audit.action("cancel", f"task {tid}", tid) as outcome:
            if pool is None:
                previous = await self._store.cancel(tid, by=by, note=sealed)
            else:  # held here, unstarted: back in the queue first, so it is cancelled queued
                async with pool.held.giving_back(lambda c: c.id == tid, "being cancelled"):
                    previous = await self._store.cancel(tid, by=by, note=sealed)
            outcome.text = f"cancelled (was {previous})"
        local = pool is not None and pool.cancel_local(tid)
        if previous == TaskState.RUNNING and not local:
            await self._stop_elsewhere(tid)
        self._waiters.finished(tid)
        self._bus.emit(EventKind.CANCELLED, task_id=str(tid), message=f"was {previous}: {note}")
        return previous

    async def _stop_elsewhere(self, task_id: int) -> None:
        """A cancelled task running on another node: tell that node to stop it now
        (its lease renewal would notice too, but later)."""
        worker = (await self._store.get(task_id)).worker or ""
        owner = worker.split("/", 1)[0]
        if owner and owner != self._node:
            with self._audit.quiet():  # part of the cancel, recorded as such
                await self._nodes.send_command("stop_task", {"task_id": task_id}, node=owner)

    async def reprioritize(self, task_id: str | int, priority: int | str) -> int:
        """Change a queued or scheduled task's priority; returns the old priority."""
        tid = parse_task_id(task_id)
        new = parse_priority(priority)
        self._state.require_writable("reprioritize")
        pool, by = self._state.pool, self._state.actor.who
        async with self._audit.action("reprioritize", f"task {tid}", tid) as outcome:
            try:
                if pool is None:
                    old = await self._store.reprioritize(tid, new, by=by)
                else:  # held tasks it puts behind it go back first, so the new order holds
                    async with pool.held.reordering(tid, new):
                        old = await self._store.reprioritize(tid, new, by=by)
            except InvalidTransition as refusal:  # running, or held ready by another node
                with self._audit.quiet():
                    old = await self._reprioritize_elsewhere(tid, new, refusal)
            outcome.text = f"priority {old} → {new}"
        self._bus.emit(EventKind.REPRIORITIZED, task_id=str(tid), message=f"priority {old} → {new}")
        return old

    async def _reprioritize_elsewhere(self, task_id: int, new: int, refusal: Exception) -> int:
        """A task another node has claimed may only be held ready there, unstarted: ask
        that node to give it back with the new priority, and wait for its answer (it
        refuses if the task has started)."""
        record = await self._store.get(task_id)
        owner = (record.worker or "").split("/", 1)[0]
        if record.state != TaskState.RUNNING or not owner or owner == self._node:
            raise refusal
        args = {"task_id": task_id, "priority": new}
        command = await self._nodes.send_command("reprioritize", args, node=owner)
        deadline = time.monotonic() + RELAY_WAIT
        while time.monotonic() < deadline:  # another process's answer: polled
            for result in await self._store.command_results(command):
                if not result.ok:
                    raise InvalidTransition(result.outcome)
                return record.priority
            await asyncio.sleep(0.05)
        raise InvalidTransition(
            f"task {task_id} is running on node {owner}, which did not answer within "
            f"{RELAY_WAIT:g} s; only queued or scheduled tasks can change priority"
        )

    async def retry(self, task_id: str | int) -> TaskState:
        """Queue a failed or cancelled task again (with a fresh retry budget)."""
        tid = parse_task_id(task_id)
        self._state.require_writable("retry")
        async with self._audit.action("retry", f"task {tid}", tid) as outcome:
            previous = await self._store.retry(tid, by=self._state.actor.who, retries=None)
            outcome.text = f"queued again (was {previous})"
        self._state.kick()
        self._bus.emit(EventKind.RETRIED, task_id=str(tid), message=f"was {previous}")
        return previous

    async def retry_all(
        self,
        state: States,
        queue: str | None,
        handler: str | None,
        ids: Sequence[str | int] | None = None,
    ) -> int:
        """Queue every failed (or cancelled) task matching the filter (and of ``ids``, if
        given) again; returns how many."""
        states = _states(state)
        wrong = [s for s in states if s not in (TaskState.FAILED, TaskState.CANCELLED)]
        if wrong or not states:
            raise ValueError(
                "only failed or cancelled tasks can be retried; "
                f"got {', '.join(map(str, wrong)) or 'nothing'}"
            )
        if queue is not None:
            check_queue_name(queue)
        id_list = None if ids is None else [storable_id(i) or 0 for i in ids]  # 0: no task
        self._state.require_writable("retry")
        target = _selection(states, queue, handler, id_list)
        by = self._state.actor.who
        async with self._audit.action("retry_all", target) as outcome:
            count = await self._store.retry_where(states, queue, handler, by, id_list)
            outcome.text = f"{count} tasks queued again"
        if count:
            self._state.kick()
        self._bus.emit(EventKind.RETRIED, message=f"{count} tasks retried", data={"count": count})
        return count

    async def purge(
        self,
        state: States,
        queue: str | None,
        handler: str | None,
        ids: Sequence[str | int] | None,
    ) -> int:
        """Delete finished tasks (succeeded, failed or cancelled); returns how many."""
        states = _states(state)
        active = [s for s in states if s not in TERMINAL_STATES]
        if active or not states:
            raise ValueError(
                "only finished tasks can be purged (succeeded, failed, cancelled); "
                f"got {', '.join(map(str, active)) or 'nothing'} — cancel active tasks first"
            )
        if queue is not None:
            check_queue_name(queue)
        id_list = None if ids is None else [storable_id(i) or 0 for i in ids]  # 0: no task
        self._state.require_writable("purge")
        target = _selection(states, queue, handler, id_list)
        async with self._audit.action("purge", target) as outcome:
            count = await self._store.purge(states, queue, handler, id_list)
            outcome.text = f"{count} tasks deleted"
        self._bus.emit(EventKind.PURGED, message=f"{count} tasks purged", data={"count": count})
        return count

    async def set_workers(self, n: int) -> int:
        """Resize the pool: grow at once; shrink after current tasks. Returns the old size."""
        count = check_workers(n, self._state.settings.max_workers)
        async with self._audit.action("set_workers", f"node {self._node}") as outcome:
            old = await self.resize(count)
            outcome.text = f"workers {old} → {count}"
        return old

    async def resize(self, n: int) -> int:
        """``set_workers`` unrecorded: the autoscaler's and the saved setting's way."""
        state = self._state
        count = check_workers(n, state.settings.max_workers)
        old = state.worker_count
        state.workers = count
        if state.pool is not None:
            state.pool.resize(count)
        if state.monitor is not None and count != old:
            state.monitor.note_manual_change()
        self._bus.emit(
            EventKind.WORKERS_CHANGED,
            message=f"workers {old} → {count}",
            data={"old": old, "new": count},
        )
        return old

    async def set_paused(self, queue: str, paused: bool) -> bool:
        """Pause or resume claiming from ``queue``; False if it already was so."""
        name = check_queue_name(queue)
        self._state.require_writable("pause a queue" if paused else "resume a queue")
        verb = "pause" if paused else "resume"
        async with self._audit.action(verb, f"queue {name}") as outcome:
            changed = await self._store.set_paused(name, paused)
            outcome.text = f"{verb}d" if changed else f"already {verb}d"
        if self._state.pool is not None:  # its held tasks go back unstarted
            self._state.pool.held.set_paused(name, paused)
        if changed:
            if not paused:
                self._state.kick()
            kind, verb = (
                (EventKind.QUEUE_PAUSED, "paused")
                if paused
                else (EventKind.QUEUE_RESUMED, "resumed")
            )
            self._bus.emit(kind, queue=name, message=f"queue {name} {verb}")
        return changed

    async def set_all_paused(self, paused: bool, note: str | None = None) -> bool:
        """Pause everything (no task starts on any node, enqueues still accepted) or
        resume; False if it already was so."""
        note = check_note(note)
        self._state.require_writable("pause everything" if paused else "resume everything")
        verb = "pause_all" if paused else "resume_all"
        async with self._audit.action(verb, "every queue on every node", note=note) as outcome:
            changed = await self._store.set_paused(None, paused, self._state.actor.who, note)
            done = "paused" if paused else "resumed"
            outcome.text = f"everything {done}" if changed else f"everything was already {done}"
        if self._state.pool is not None:  # its held tasks go back unstarted
            self._state.pool.held.set_paused(None, paused)
        if changed:
            if not paused:
                self._state.kick()
            kind = EventKind.ALL_PAUSED if paused else EventKind.ALL_RESUMED
            why = f": {note}" if note else ""
            message = f"everything paused{why}" if paused else "everything resumed"
            self._bus.emit(kind, message=message)
        return changed

    async def drain(self, timeout: float | None = None) -> None:
        """Wait until no task is queued, scheduled or running (paused queues aside)."""
        limit = None if timeout is None else check_seconds("timeout", timeout)
        state = self._state
        state.require_running()
        completer, pool, progress = state.completer, state.pool, state.progress
        assert completer is not None and pool is not None and progress
        deadline = None if limit is None else time.monotonic() + limit
        while True:
            await completer.idle()
            counts = await self._store.counts()
            waiting = running = 0
            for name, per in counts.by_queue.items():
                running += per.get(TaskState.RUNNING, 0)
                if name not in counts.paused and counts.all_paused is None:
                    waiting += per.get(TaskState.QUEUED, 0) + per.get(TaskState.SCHEDULED, 0)
            if not waiting and not running and not pool.busy and not completer.pending:
                return
            if pool.size == 0 and not running and not pool.busy:
                raise RuntimeError(
                    f"drain() cannot finish: this engine has 0 workers and {waiting} tasks are "
                    "waiting; call set_workers(n) first"
                )
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(
                    f"drain() timed out after {limit:g} s: {waiting} queued or scheduled and "
                    f"{running} running tasks remain"
                )
            progress.clear()
            await wait_event(progress, 0.05)

    async def apply_action(self, action: tuple[str, Mapping[str, Any]]) -> str:
        """Carry out a finding's suggested command (set_workers, pause, resume,
        update_settings); returns what was done, as text."""
        name, args = action
        if name == "set_workers":
            old = await self.set_workers(args["n"])
            return f"workers {old} → {args['n']}"
        if name in ("pause", "resume"):
            changed = await self.set_paused(args["queue"], name == "pause")
            state = "paused" if name == "pause" else "resumed"
            return (
                f"queue {args['queue']} {state}"
                if changed
                else f"queue {args['queue']} was already {state}"
            )
        if name == "update_settings":  # saved: every node takes it
            await self._saved.update(args)
            return "settings: " + ", ".join(f"{k}={v!r}" for k, v in args.items())
        raise ValueError(
            f"unknown action {name!r}; allowed: set_workers, pause, resume, update_settings"
        )

    async def apply_command(self, command: NodeCommand) -> str:
        """Carry out one command another node sent here; returns what was done (raises
        if refused)."""
        with self._audit.quiet():  # the sender recorded it
            return await self._apply_command(command)

    async def _apply_command(self, command: NodeCommand) -> str:
        args = command.args
        if command.action == "reprioritize":  # a task held ready here, from another node
            task_id, pool = int(args["task_id"]), self._state.pool
            if pool is None or not pool.holds(task_id):
                raise InvalidTransition(
                    f"task {task_id} is running; only queued or scheduled tasks can change priority"
                )
            old = await self.reprioritize(task_id, args["priority"])
            return f"priority {old} → {args['priority']} (given back unstarted)"
        if command.action in ("update_settings", "reset_settings"):  # here only, not saved
            return await self._saved.on_command(command)
        if command.action == "stop_task":
            task_id = int(args["task_id"])
            pool = self._state.pool
            if pool is not None and pool.cancel_local(task_id):
                return f"stopped task {task_id}"
            return f"task {task_id} is not running here"
        return await self.apply_action((command.action, args))


def _selection(
    states: Sequence[TaskState],
    queue: str | None,
    handler: str | None,
    ids: Sequence[int] | None = None,
) -> str:
    """``failed tasks in queue images, handler resize`` (what a bulk action is about)."""
    text = f"{'/'.join(map(str, states))} tasks"
    if queue is not None:
        text += f" in queue {queue}"
    if handler is not None:
        text += f", handler {handler}"
    if ids is not None:
        shown = ", ".join(map(str, ids[:10])) + (" …" if len(ids) > 10 else "")
        text += f", ids {shown}"
    return text
