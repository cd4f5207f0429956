"""Live stacks as a part: ``engine.stack(task_id)`` for a task running here or on
another node of the store, and the ``stack`` command a node answers.

A task running here is read at once (see :mod:`engine.stacks`): an async handler's
await chain, a thread handler's thread, a process handler's child (asked over its
pipe, :data:`PROCESS_WAIT` at most). A task running on another node: that node is
sent a ``stack`` command, carries it out at its next heartbeat and stores the stack
as the command's outcome (JSON); the asker polls for it, :data:`REMOTE_WAIT` at most.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

from engine.checks import parse_task_id
from engine.errors import InvalidTransition, TaskNotRunning
from engine.model import TaskState
from engine.pool.slots import RunningTask
from engine.stacks import StackTrace, coroutine_frames, fold, thread_frames
from engine.state import EngineState
from engine.store.base import Store

#: how long a worker process may take to send its stack (seconds)
PROCESS_WAIT = 1.5
#: how long another node may take to answer a ``stack`` command (seconds: its next
#: heartbeat, 0.5 s, plus a process child's answer)
REMOTE_WAIT = 5.0
_POLL = 0.05  # how often the answer of another node is looked for (seconds)


class Stacks:
    """``stack(task_id)`` and the ``stack`` node command."""

    def __init__(
        self, state: EngineState, store: Store, node: str, clock: Callable[[], float]
    ) -> None:
        self._state = state
        self._store = store
        self._node = node
        self._clock = clock

    async def stack(self, task_id: str | int) -> StackTrace:
        """The current stack of a running task's handler, wherever it runs.
        ``TaskNotFound`` for an unknown id; ``TaskNotRunning`` for a task that is not
        running (or whose node does not answer)."""
        tid = parse_task_id(task_id)
        self._state.require_running()
        local = await self.local(tid)
        if local is not None:
            return local
        record = await self._store.get(tid)  # TaskNotFound
        owner = (record.worker or "").split("/", 1)[0]
        if record.state != TaskState.RUNNING or not owner:
            raise TaskNotRunning(
                f"task {tid} is not running (it is {record.state.value}): only a running "
                "task has a live stack"
            )
        if owner == self._node:  # it finished (or moved) in between
            raise TaskNotRunning(f"task {tid} is no longer running here (it just ended)")
        return await self._ask(owner, tid)

    async def local(self, task_id: int) -> StackTrace | None:
        """The stack of a task running on this node; None if it does not run here."""
        pool = self._state.pool
        rt = None if pool is None else pool.running.get(task_id)
        if pool is None or rt is None:
            return None
        executor = rt.handler.executor
        if executor == "async":
            outer = [] if rt.task is None else coroutine_frames(rt.task.get_coro())
            raw = [*outer, *coroutine_frames(rt.coro)]
        elif executor == "thread":
            raw = thread_frames(pool.threads.idents.get(rt.ctx))
        else:
            raw = await self._process_frames(rt)
        return StackTrace(task_id, self._node, executor, rt.handler.name, fold(raw), self._clock())

    async def _process_frames(self, rt: RunningTask) -> list[tuple[str, int, str]]:
        pool = self._state.pool
        child = None if pool is None else pool.processes.child_of(rt.ctx)
        if child is None:  # starting or ending: no child holds it right now
            raise TaskNotRunning(f"task {rt.claimed.id} has no worker process right now")
        frames = await child.stack(PROCESS_WAIT)
        if frames is None:
            raise TaskNotRunning(
                f"the worker process of task {rt.claimed.id} did not send its stack "
                f"within {PROCESS_WAIT:g} s"
            )
        return [(str(f[0]), int(f[1]), str(f[2])) for f in frames]

    async def _ask(self, owner: str, task_id: int) -> StackTrace:
        """Send the owner a ``stack`` command and wait for its answer."""
        self._state.require_writable("ask another node for a task's stack")
        args = json.dumps({"task_id": task_id})
        command = await self._store.send_command(owner, "stack", args, self._state.actor.who)
        deadline = time.monotonic() + REMOTE_WAIT
        while time.monotonic() < deadline:  # another process's answer: polled
            for result in await self._store.command_results(command):
                if not result.ok:
                    raise TaskNotRunning(result.outcome)
                return StackTrace.from_dict(json.loads(result.outcome))
            await asyncio.sleep(_POLL)
        raise TaskNotRunning(
            f"task {task_id} runs on node {owner}, which did not answer within "
            f"{REMOTE_WAIT:g} s (is it alive? see taskdeck nodes)"
        )

    async def on_command(self, task_id: int) -> str:
        """Another node asks for the stack of a task running here: the stack as JSON."""
        trace = await self.local(task_id)
        if trace is None:
            raise InvalidTransition(f"task {task_id} is not running on node {self._node}")
        return json.dumps(trace.as_dict(), separators=(",", ":"))
