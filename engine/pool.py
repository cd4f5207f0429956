"""The worker pool: slots that run claimed tasks, resizable while it runs.

A *slot* is one unit of concurrency (shown as a worker ``w1``, ``w2`` …). The
dispatcher claims exactly as many tasks as there are idle slots — no hidden
prefetch, so priorities and reprioritisation apply to everything not yet running
— and starts each on its own asyncio task. Whatever the executor, a slot is freed
the moment its attempt ends: completions are handed to the
:class:`~engine.completions.Completer` and committed in the background.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from engine import context
from engine.aio import TimedSteps, wait_event
from engine.codec import Codec, to_json
from engine.completions import Completer
from engine.context import TaskContext
from engine.errors import PayloadDecodeError, ResultNotSerializable
from engine.events import EventBus, EventKind
from engine.executors import ProcessRunner, RemoteError, ThreadRunner, WorkerProcessLost
from engine.limits import FlowLimits
from engine.metrics import Metrics
from engine.model import TaskState
from engine.registry import Handler, Registry
from engine.settings import Settings
from engine.snapshot import WorkerInfo
from engine.store.base import ClaimedTask, Completion, Store

log = logging.getLogger(__name__)

MAX_ERROR_TEXT = 32_000


class HardTimeout(TimeoutError):
    """An attempt ran past its handler's ``timeout``."""


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


class WorkerPool:
    def __init__(
        self,
        *,
        store: Store,
        registry: Registry,
        codec: Codec,
        bus: EventBus,
        completer: Completer,
        node: str,
        settings: Callable[[], Settings],
        clock: Callable[[], float],
        metrics: Metrics,
        rng: random.Random | None = None,
        flow: Callable[[], FlowLimits | None] = lambda: None,
    ) -> None:
        self._flow = flow
        self._split_claims = store.split_claims
        self._store = store
        self._registry = registry
        self._codec = codec
        self._bus = bus
        self._completer = completer
        self._node = node
        self._settings = settings
        self._clock = clock
        self._metrics = metrics
        self._rng = rng or random.Random()
        self._slots: dict[int, Slot] = {}
        self._idle: list[Slot] = []
        self._target = 0
        self.running: dict[int, RunningTask] = {}
        self._wake = asyncio.Event()
        self._waiting_for_slot = False
        self._reserved = 0  # idle slots promised to enqueue_and_claim calls in flight
        self._dispatcher: asyncio.Task[None] | None = None
        self._stopping = False
        self.claim_gen = 0
        self._busy_area = 0.0  # ∫ busy workers dt, in worker-seconds
        self._busy_mark = time.monotonic()
        self.threads = ThreadRunner()
        self.processes = ProcessRunner(settings().max_payload_bytes)
        self.started_total = 0
        self.started_at = 0.0  # start()'s time: no task waited here before it (queue wait)

    # -- size -------------------------------------------------------------------
    @property
    def size(self) -> int:
        return self._target

    @property
    def busy(self) -> int:
        return len(self.running)

    def busy_seconds(self) -> float:
        """Worker-seconds spent busy since the pool was made (exact, not sampled)."""
        return self._busy_area + len(self.running) * (time.monotonic() - self._busy_mark)

    def _busy_changing(self) -> None:
        """Call just before ``running`` gains or loses a task."""
        now = time.monotonic()
        self._busy_area += len(self.running) * (now - self._busy_mark)
        self._busy_mark = now

    def resize(self, n: int) -> None:
        """Grow at once; shrink idle slots at once and busy ones after their task."""
        self._target = n
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
        self.processes.trim(n)
        self.kick()

    def kick(self) -> None:
        """Wake the dispatcher: there may be work or a free slot."""
        self._wake.set()

    # -- dispatch ---------------------------------------------------------------
    def start(self) -> None:
        self.started_at = self._clock()
        self._dispatcher = asyncio.get_running_loop().create_task(
            self._dispatch(), name="taskdeck-dispatcher"
        )

    async def _dispatch(self) -> None:
        backoff = 0.0
        while not self._stopping:
            settings = self._settings()
            # SQLite: at most half the pool per claim, so that while one half runs on
            # the loop the other half's claim is being written (loop and writer thread
            # overlap). A server store claims every free slot at once: fewer, larger
            # transactions leave the database server (on the same cores, often) more
            # room (bench/cluster_bench.py: 3 nodes 2.4× → 2.7× one node).
            free = len(self._idle) - self._reserved
            half = max(1, (self._target + 1) // 2) if self._split_claims else free
            n = min(free, settings.claim_batch, half)
            if n == 0 or not self._completer.healthy or not len(self._registry):
                self._wake.clear()
                self._waiting_for_slot = n == 0
                # Nothing kicks the pool when the store takes completions again: while
                # it refuses them, look again soon rather than after a long poll_interval.
                healthy = self._completer.healthy
                await wait_event(
                    self._wake,
                    settings.poll_interval if healthy else min(settings.poll_interval, 0.1),
                )
                self._waiting_for_slot = False
                continue
            self._wake.clear()
            try:
                claimed = await self._store.claim(
                    self._node, n, self._registry.names(), settings.lease_ttl, self._flow()
                )
            except Exception as exc:
                backoff = min(5.0, max(0.05, backoff * 2))
                log.error("claiming tasks failed (%s); retrying in %.2f s", exc, backoff)
                self._metrics.record_store_error("claims", exc)
                self._bus.emit(EventKind.STORE_ERROR, message=f"claim failed: {exc}")
                await asyncio.sleep(backoff)
                continue
            backoff = 0.0
            self._metrics.record_store_ok("claims")
            self.claim_gen += 1
            for task in claimed:
                self._start(task)
            if len(claimed) < n and not self._stopping:
                # Out of ready work: sleep until kicked (local enqueue …) or the poll interval
                # (or until a rate limit that held tasks back has a token again).
                retry_in = claimed.retry_in
                wait = (
                    settings.poll_interval
                    if retry_in is None
                    else min(settings.poll_interval, retry_in)
                )
                await wait_event(self._wake, wait)

    def reserve(self) -> bool:
        """Promise an idle slot to a task being enqueued-and-claimed; False if none."""
        if self._stopping or len(self._idle) - self._reserved <= 0:
            return False
        self._reserved += 1
        return True

    def unreserve(self, claimed: ClaimedTask | None) -> None:
        """Give the promised slot back, starting ``claimed`` on it if the store handed
        the task over."""
        self._reserved -= 1
        if claimed is not None:
            self.claim_gen += 1
            self._start(claimed)

    def _start(self, claimed: ClaimedTask) -> None:
        handler = self._registry.find(claimed.handler)
        if handler is None or self._stopping or not self._idle:
            why = "engine stopping" if self._stopping else "no handler or free worker here"
            self._release(claimed, f"returned unstarted ({why}); attempt not counted")
            return
        slot = self._idle.pop()
        ctx = TaskContext(
            str(claimed.id),
            claimed.attempts,
            claimed.handler,
            claimed.queue,
            claimed.max_retries + 1,
        )
        rt = RunningTask(claimed, handler, ctx, slot, time.monotonic(), self.claim_gen)
        slot.running = rt
        self._busy_changing()
        self.running[claimed.id] = rt
        self.started_total += 1
        ready = max(claimed.run_at or claimed.created_at, self.started_at)  # see started_at
        self._metrics.record_start(handler.name, handler.executor, claimed.started_at - ready)
        rt.task = asyncio.get_running_loop().create_task(self._run(rt))
        rt.task.add_done_callback(partial(self._task_done, rt))
        if self._bus.has_subscribers:
            self._bus.emit(EventKind.STARTED, **ctx.event_fields(), message=f"on {slot.id}")

    def _release(self, claimed: ClaimedTask, note: str) -> None:
        self._completer.add(
            Completion(
                claimed.id,
                claimed.attempts,
                self._node,
                TaskState.QUEUED,
                self._clock(),
                run_at=self._clock(),
                note=note,
                release=True,
                handler=claimed.handler,
                queue=claimed.queue,
            )
        )

    # -- one attempt ------------------------------------------------------------
    async def _run(self, rt: RunningTask) -> None:
        token = context.bind(rt.ctx)
        completion: Completion | None
        try:
            self._arm_timers(rt)
            result_text = await self._attempt(rt)
            completion = self._outcome(rt, TaskState.SUCCEEDED, result=result_text)
        except asyncio.CancelledError:
            completion = self._after_cancel(rt)
        except BaseException as exc:
            completion = self._failure(rt, exc)
        finally:
            context.unbind(token)
            for timer in rt.timers:
                timer.cancel()
            self._free(rt)
            rt.finished = True
        if completion is not None:
            self._record(rt, completion)
            self._completer.add(completion)

    def _record(self, rt: RunningTask, completion: Completion) -> None:
        if completion.release:
            outcome = "interrupted"
        elif completion.state in (TaskState.SUCCEEDED, TaskState.FAILED):
            outcome = completion.state.value
        else:
            outcome = "retry"
        error = None
        if completion.note and outcome in ("failed", "retry"):
            error = rt.error_summary
        self._metrics.record_attempt(
            rt.handler.name,
            rt.handler.executor,
            rt.claimed.queue,
            run_time=time.monotonic() - rt.started,
            outcome=outcome,
            cpu=rt.ctx.cpu_time,
            max_step=rt.ctx.max_step,
            error=error,
        )

    def _task_done(self, rt: RunningTask, task: asyncio.Task[None]) -> None:
        """Clean up after a task cancelled before its first step (its body never ran)."""
        if rt.finished:
            return
        rt.finished = True
        self._free(rt)
        try:
            completion = self._after_cancel(rt)
        except asyncio.CancelledError:
            return  # stopped from outside: the lease brings the task back
        if completion is not None:
            self._completer.add(completion)

    async def _attempt(self, rt: RunningTask) -> str | None:
        """Run the handler; returns the encoded result."""
        handler, claimed = rt.handler, rt.claimed
        try:
            payload_json = self._codec.unseal(claimed.payload)
            kwargs = (
                {}
                if handler.executor == "process"
                else handler.check_payload(json.loads(payload_json), types=False)
            )
        except Exception as exc:
            raise PayloadDecodeError(f"cannot read the stored payload: {exc}") from exc
        if handler.timeout is None:
            value = await self._call(rt, kwargs, payload_json)
        else:
            try:
                async with asyncio.timeout(handler.timeout) as scope:
                    value = await self._call(rt, kwargs, payload_json)
            except TimeoutError as exc:
                if scope.expired():
                    raise HardTimeout(
                        f"attempt {claimed.attempts} exceeded the hard timeout of "
                        f"{handler.timeout:g} s"
                    ) from exc
                raise
        if handler.executor == "process":
            text = str(value)  # checked for JSON in the worker process
        else:
            try:
                text = to_json(value, "result")
            except ValueError as exc:
                raise ResultNotSerializable(f"{exc} (not retried)") from None
        self._check_size(len(text))
        return self._codec.seal(text)

    async def _call(self, rt: RunningTask, kwargs: dict[str, object], payload_json: str) -> object:
        handler = rt.handler
        if handler.executor == "async":
            timed = TimedSteps(handler.fn(**kwargs))
            try:
                return await timed
            finally:
                rt.ctx.cpu_time, rt.ctx.max_step = timed.total, timed.longest
        if handler.executor == "thread":
            return await self.threads.run(handler.fn, kwargs, rt.ctx)
        return await self.processes.run(handler, payload_json, rt.ctx)

    def _check_size(self, size: int) -> None:
        limit = self._settings().max_payload_bytes
        if size > limit:
            raise ResultNotSerializable(
                f"the result is {size:,} bytes as JSON; the limit is {limit:,} bytes "
                "(max_payload_bytes; not retried)"
            )

    def _arm_timers(self, rt: RunningTask) -> None:
        soft = rt.handler.soft_timeout
        if soft is not None:
            rt.timers.append(asyncio.get_running_loop().call_later(soft, self._soft_timeout, rt))

    def _soft_timeout(self, rt: RunningTask) -> None:
        rt.ctx._mark_soft_timeout()
        if rt.handler.executor == "process":
            self.processes.notify_soft_timeout(rt.ctx)
        message = f"soft timeout of {rt.handler.soft_timeout:g} s passed"
        self._bus.emit(EventKind.SOFT_TIMEOUT, **rt.ctx.event_fields(), message=message)

    def _free(self, rt: RunningTask) -> None:
        self._busy_changing()
        self.running.pop(rt.claimed.id, None)
        slot = rt.slot
        slot.running = None
        if slot.retiring:
            del self._slots[slot.number]
        else:
            self._idle.append(slot)
            if self._waiting_for_slot:  # otherwise the queue was empty: no point waking
                self._wake.set()

    # -- outcomes ---------------------------------------------------------------
    def _outcome(
        self,
        rt: RunningTask,
        state: TaskState,
        *,
        result: str | None = None,
        error: str | None = None,
        run_at: float | None = None,
        note: str | None = None,
        release: bool = False,
    ) -> Completion:
        ctx = rt.ctx
        return Completion(
            rt.claimed.id,
            rt.claimed.attempts,
            self._node,
            state,
            self._clock(),
            result=result,
            error=error,
            run_at=run_at,
            worker=f"{self._node}/{rt.slot.id}",
            progress=ctx.progress_fraction,
            progress_message=None if ctx.message is None else self._codec.seal(ctx.message),
            note=note,
            release=release,
            handler=ctx.handler,
            queue=ctx.queue,
            workflow_id=rt.claimed.workflow_id,
            webhook=rt.claimed.webhook,
        )

    def _after_cancel(self, rt: RunningTask) -> Completion | None:
        if rt.cancel_requested or rt.lease_lost:
            return None  # the store already moved it (cancelled / taken over)
        if rt.interrupted or self._stopping:
            return self._outcome(
                rt,
                TaskState.QUEUED,
                run_at=self._clock(),
                release=True,
                note="interrupted by shutdown; attempt not counted",
            )
        raise asyncio.CancelledError

    def _failure(self, rt: RunningTask, exc: BaseException) -> Completion:
        claimed, handler = rt.claimed, rt.handler
        attempt, max_attempts = claimed.attempts, claimed.max_retries + 1
        if isinstance(exc, RemoteError):
            text, kind = exc.text, exc.type_name
            retryable = not exc.not_serializable and (
                not handler.retry.retry_on
                or any(
                    f"{c.__module__}.{c.__qualname__}" in exc.mro for c in handler.retry.retry_on
                )
            )
        else:
            text = "".join(traceback.format_exception(exc))
            kind = type(exc).__name__
            retryable = not isinstance(exc, PayloadDecodeError | ResultNotSerializable) and (
                handler.retry.should_retry(exc)
            )
        if isinstance(exc, WorkerProcessLost):
            text = f"WorkerProcessLost: {exc} during attempt {attempt}/{max_attempts}\n"
        rt.error_summary = f"{kind}: {str(exc)[:160]}" if str(exc) else kind
        if len(text) > MAX_ERROR_TEXT:
            text = (
                text[: MAX_ERROR_TEXT // 2] + "\n… (truncated) …\n" + text[-MAX_ERROR_TEXT // 2 :]
            )
        error = self._codec.seal(text)
        if isinstance(exc, HardTimeout):
            self._bus.emit(EventKind.TIMED_OUT, **rt.ctx.event_fields(), message=str(exc))
        if retryable and attempt < max_attempts:
            delay = handler.retry.delay(attempt, self._rng)
            now = self._clock()
            state = TaskState.SCHEDULED if delay > 0 else TaskState.QUEUED
            note = f"{kind}; retry {attempt}/{max_attempts - 1} in {delay:.2f} s"
            return self._outcome(rt, state, error=error, run_at=now + delay, note=note)
        why = "not retryable" if not retryable else f"attempt {attempt}/{max_attempts}"
        return self._outcome(rt, TaskState.FAILED, error=error, note=f"{kind}; {why}")

    # -- operator actions on running tasks -------------------------------------
    def cancel_local(self, task_id: int) -> bool:
        """Stop a task running here (the store has already marked it cancelled)."""
        rt = self.running.get(task_id)
        if rt is None:
            return False
        rt.cancel_requested = True
        self._stop_attempt(rt)
        return True

    def _stop_attempt(self, rt: RunningTask) -> None:
        rt.ctx._mark_cancelled()
        if rt.task is not None and not rt.task.done():
            rt.task.cancel()

    def leases_renewed(self, live: set[int], gen: int) -> list[int]:
        """Stop tasks whose lease was taken away (cancelled or rescued elsewhere)."""
        lost = []
        for task_id, rt in list(self.running.items()):
            if rt.claim_gen <= gen and task_id not in live:
                rt.lease_lost = True
                self._stop_attempt(rt)
                lost.append(task_id)
        return lost

    def progress_changes(self) -> list[RunningTask]:
        """Running tasks whose progress changed since the last call."""
        changed = []
        for rt in self.running.values():
            if rt.ctx.progress_version != rt.saved_progress:
                rt.saved_progress = rt.ctx.progress_version
                changed.append(rt)
        return changed

    # -- picture ----------------------------------------------------------------
    def workers(self) -> tuple[WorkerInfo, ...]:
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

    # -- stop -------------------------------------------------------------------
    async def stop(self, grace: float) -> int:
        """Stop claiming, give running tasks ``grace`` seconds, then interrupt the rest.

        Interrupted tasks go back to ``queued`` without using an attempt. Returns how
        many were interrupted.
        """
        self._stopping = True
        self.kick()  # the dispatcher ends; a claim it has out returns its tasks unstarted
        tasks = [rt.task for rt in self.running.values() if rt.task is not None]
        if tasks and grace > 0:
            await asyncio.wait(tasks, timeout=grace)
        if self._dispatcher is not None:  # a blocked claim gives up at the stop's deadline
            await self._dispatcher
        leftover = [rt for rt in self.running.values() if rt.task is not None]
        for rt in leftover:
            rt.interrupted = True
            self._stop_attempt(rt)
        if leftover:
            await asyncio.wait([rt.task for rt in leftover if rt.task is not None])
        self.threads.close()
        await self.processes.close()
        return len(leftover)
