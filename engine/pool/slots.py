"""Worker slots: which are idle, which run what, and how busy the pool has been.

A *slot* is one unit of concurrency (shown as a worker ``w1``, ``w2`` …). The
table grows and shrinks on :meth:`SlotTable.resize`: idle slots go at once, busy
ones are marked *retiring* and go when their task ends.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from engine.context import TaskContext
from engine.registry import Handler
from engine.snapshot import WorkerInfo
from engine.store.base import ClaimedTask


@dataclass(eq=False)
class Slot:
    number: int
    running: RunningTask | None = None
    retiring: bool = False

    @property
    def id(self) -> str:
        return f"w{self.number}"


@dataclass(eq=False)
class RunningTask:
    claimed: ClaimedTask
    handler: Handler
    ctx: TaskContext
    slot: Slot
    started: float
    claim_gen: int
    task: asyncio.Task[None] | None = None
    cancel_requested: bool = False
    lease_lost: bool = False
    interrupted: bool = False
    timers: list[asyncio.TimerHandle] = field(default_factory=list)
    saved_progress: int = 0
    finished: bool = False
    error_summary: str | None = None  # "ExcType: message", for the metrics' top errors
    coro: object = None  # an async handler's coroutine while it runs (its live stack)


class SlotTable:
    """The pool's slots and the tasks running on them.

    ``wake`` is set when a slot frees while the dispatcher waits for one
    (``waiting_for_slot``).
    """

    def __init__(self, wake: asyncio.Event) -> None:
        self._wake = wake
        self.waiting_for_slot = False
        self._slots: dict[int, Slot] = {}
        self._idle: list[Slot] = []
        self.target = 0
        self.running: dict[int, RunningTask] = {}
        self._busy_area = 0.0  # ∫ busy workers dt, in worker-seconds
        self._busy_mark = time.monotonic()

    @property
    def idle(self) -> int:
        return len(self._idle)

    def busy_seconds(self) -> float:
        """Worker-seconds spent busy since the table was made (exact, not sampled)."""
        return self._busy_area + len(self.running) * (time.monotonic() - self._busy_mark)

    def _busy_changing(self) -> None:
        """Call just before ``running`` gains or loses a task."""
        now = time.monotonic()
        self._busy_area += len(self.running) * (now - self._busy_mark)
        self._busy_mark = now

    def resize(self, n: int) -> None:
        """Grow at once; shrink idle slots at once and busy ones after their task."""
        self.target = n
        active = [s for s in self._slots.values() if not s.retiring]
        for slot in sorted((s for s in self._slots.values() if s.retiring), key=lambda s: s.number):
            if len(active) >= n:
                break
            slot.retiring = False
            active.append(slot)
        number = 1
        while len(active) < n:
            while number in self._slots:
                number += 1
            slot = Slot(number)
            self._slots[number] = slot
            self._idle.append(slot)
            active.append(slot)
        excess = len(active) - n
        for slot in sorted(self._idle, key=lambda s: -s.number):
            if excess <= 0:
                break
            self._idle.remove(slot)
            del self._slots[slot.number]
            excess -= 1
        for slot in sorted(active, key=lambda s: -s.number):
            if excess <= 0:
                break
            if slot.running is not None and not slot.retiring:
                slot.retiring = True
                excess -= 1
        self._idle.sort(key=lambda s: -s.number)  # pop() hands out the lowest number

    def occupy(self, claimed: ClaimedTask, handler: Handler, claim_gen: int) -> RunningTask | None:
        """Put ``claimed`` on the lowest idle slot; None if every slot is busy."""
        if not self._idle:
            return None
        slot = self._idle.pop()
        ctx = TaskContext(
            str(claimed.id),
            claimed.attempts,
            claimed.handler,
            claimed.queue,
            claimed.max_retries + 1,
        )
        rt = RunningTask(claimed, handler, ctx, slot, time.monotonic(), claim_gen)
        slot.running = rt
        self._busy_changing()
        self.running[claimed.id] = rt
        return rt

    def free(self, rt: RunningTask) -> None:
        """Take ``rt`` off its slot; a retiring slot goes, another becomes idle."""
        self._busy_changing()
        self.running.pop(rt.claimed.id, None)
        slot = rt.slot
        slot.running = None
        if slot.retiring:
            del self._slots[slot.number]
        else:
            self._idle.append(slot)
            if self.waiting_for_slot:  # otherwise the queue was empty: no point waking
                self._wake.set()

    def workers(self) -> tuple[WorkerInfo, ...]:
        """Each slot as the snapshot shows it, by number."""
        now = time.monotonic()
        out = []
        for number in sorted(self._slots):
            slot = self._slots[number]
            rt = slot.running
            if rt is None:
                out.append(WorkerInfo(slot.id, "idle"))
                continue
            out.append(
                WorkerInfo(
                    slot.id,
                    "retiring" if slot.retiring else "busy",
                    rt.ctx.id,
                    rt.ctx.handler,
                    rt.ctx.queue,
                    rt.handler.executor,
                    rt.ctx.attempt,
                    now - rt.started,
                    rt.ctx.progress_fraction,
                    rt.ctx.message,
                )
            )
        return tuple(out)
