"""What happens to held tasks (claimed ahead, unstarted; see :mod:`engine.pool.buffer`)
other than starting: given back to the queue, dropped, and the operator's commands.

A held task is given back with a *release* completion — the handover path that
returns a claimed but unstarted task without using an attempt — so it is queued
again with its attempts unchanged. A cancelled one is dropped (the store already
cancelled it). Commands from this process act at once; those from other processes
reach the buffer through the claims that confirm it (``Claimed.gone`` and
``Claimed.paused``) and, for a cancel, the ``stop_task`` node command.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from engine.completions import Completer
from engine.model import TaskState
from engine.pool.buffer import ReadyBuffer
from engine.store.base import Claimed, ClaimedTask, Completion

#: Longest an operator's command waits for the held tasks it gives back to be saved.
GIVE_BACK_WAIT = 10.0
#: In ``paused_here``: everything was paused here (no queue can have this name).
EVERY_QUEUE = "*"


class HeldCommands:
    """The buffer's give-backs and drops, the queues paused here while a claim was
    out, and the hold that keeps claims back while a reprioritize reorders."""

    def __init__(
        self,
        buffer: ReadyBuffer,
        completer: Completer,
        node: str,
        clock: Callable[[], float],
        kick: Callable[[], None],
    ) -> None:
        self.buffer = buffer
        self._kick = kick
        self._completer = completer
        self._node = node
        self._clock = clock
        #: queues paused by this process since the claim now out was sent: what that
        #: claim brings back from them is given back
        self.paused_here: set[str] = set()
        #: tasks cancelled in this process while a claim was out (it may bring them)
        self.cancelled_here: set[int] = set()
        self.holds = 0  # reprioritizes in progress: no claim is sent meanwhile
        self.claim_out = asyncio.Event()  # set while no claim is out
        self.claim_out.set()
        self.given_back = 0
        self.dropped = 0

    # -- giving back -----------------------------------------------------------
    def give_back(self, claimed: ClaimedTask, why: str) -> None:
        """Return an unstarted task to the queue as it was before its claim: its
        attempts and timeline unchanged (``why`` is noted only should the claim not
        be the last thing its timeline says)."""
        self.given_back += 1
        note = f"returned unstarted ({why}); attempt not counted"
        # the claim's time: how its line is found
        self._back(claimed, claimed.started_at, note, unstarted=True)

    def release(self, claimed: ClaimedTask, note: str) -> None:
        """Return a claimed task that could not start here to the queue (no attempt)."""
        now = self._clock()
        self._back(claimed, now, note, run_at=now)

    def _back(self, claimed: ClaimedTask, at: float, note: str, **how: Any) -> None:
        """Queue ``claimed`` again through the completer, without counting an attempt."""
        self._completer.add(
            Completion(
                claimed.id,
                claimed.attempts,
                self._node,
                TaskState.QUEUED,
                at,
                note=note,
                release=True,
                handler=claimed.handler,
                queue=claimed.queue,
                **how,
            )
        )

    def give_back_all(self, why: str) -> int:
        taken = self.buffer.take(lambda _: True)
        for held in taken:
            self.give_back(held.claimed, why)
        return len(taken)

    # -- what a claim brought and said -------------------------------------------
    def claimed(self, claimed: Claimed, gen: int, sent_at: float, guarded: set[str]) -> list[int]:
        """Apply a returned claim: drop held tasks that are gone, give back those whose
        queue is paused, hold the new ones. Returns the gone ids (one may have started
        meanwhile). ``guarded``: the queues paused here before the claim was sent."""
        buffer = self.buffer
        for task_id in claimed.gone:
            if buffer.remove(task_id) is not None:
                self.dropped += 1
        for task_id in claimed.paused:
            held = buffer.remove(task_id)
            if held is not None:
                self.give_back(held.claimed, "its queue was paused")
        for task in claimed:
            if task.id in self.cancelled_here:
                self.dropped += 1
            elif task.queue in self.paused_here or EVERY_QUEUE in self.paused_here:
                self.give_back(task, "its queue was paused")
            else:
                buffer.add(task, gen)
        buffer.confirmed_at = sent_at
        self.cancelled_here.clear()
        self.paused_here -= guarded  # the store kept that claim out of those queues
        return list(claimed.gone)

    # -- this process's commands -----------------------------------------------
    def cancel(self, task_id: int) -> bool:
        """Drop a held task (the store has already cancelled it); False if none."""
        if self.buffer.remove(task_id) is not None:
            self.dropped += 1
            return True
        if not self.claim_out.is_set():
            self.cancelled_here.add(task_id)
        return False

    def set_paused(self, queue: str | None, paused: bool) -> None:
        """A queue (None: everything) was paused or resumed in the store: give back
        its held tasks."""
        key = EVERY_QUEUE if queue is None else queue
        if not paused:
            self.paused_here.discard(key)
            return
        if not self.claim_out.is_set():
            self.paused_here.add(key)
        why = "everything was paused" if queue is None else "its queue was paused"
        for held in self.buffer.take(lambda c: queue is None or c.queue == queue):
            self.give_back(held.claimed, why)

    @contextlib.asynccontextmanager
    async def giving_back(
        self, which: Callable[[ClaimedTask], bool], why: str
    ) -> AsyncIterator[None]:
        """While an operator's command runs: no claim goes out (one still out is waited
        for), and the held tasks ``which`` picks are back in the queue — committed —
        so the command meets them queued, as if never claimed."""
        self.holds += 1
        try:
            await self.claim_out.wait()
            taken = self.buffer.take(which)
            for held in taken:
                self.give_back(held.claimed, why)
            if taken:  # bounded: a store refusing writes fails the command itself
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._completer.idle(), GIVE_BACK_WAIT)
            yield
        finally:
            self.holds -= 1
            self._kick()

    def reordering(
        self, task_id: int, priority: int
    ) -> contextlib.AbstractAsyncContextManager[None]:
        """:meth:`giving_back` the task and every held task its new priority puts
        behind it, so the next claim orders them by the new priority."""
        rank = (-priority, task_id)

        def behind(c: ClaimedTask) -> bool:
            return c.id == task_id or (-c.priority, c.id) > rank

        return self.giving_back(behind, "reordered by a new priority")
