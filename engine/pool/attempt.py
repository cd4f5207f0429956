"""One attempt at a task: run its handler on its executor, under its timeouts, and
turn what happened into a :class:`~engine.store.base.Completion`.

Whatever the executor, the slot is freed the moment the attempt ends; the
completion goes to the :class:`~engine.completions.Completer`, which commits it in
the background. Whether a failure is retried is :func:`engine.retry.decide`.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import traceback
from collections.abc import Callable

from engine import context, tracing
from engine.aio import TimedSteps
from engine.codec import Codec, to_json
from engine.completions import Completer
from engine.errors import (
    HardTimeout,
    PayloadDecodeError,
    RemoteError,
    ResultNotSerializable,
    WorkerProcessLost,
)
from engine.events import EventBus, EventKind
from engine.metrics import Metrics
from engine.model import TaskState
from engine.pool.executors import ProcessRunner, ThreadRunner
from engine.pool.slots import RunningTask
from engine.retry import decide
from engine.settings import Settings
from engine.store.base import Completion
from engine.tasklog import TaskLogs

MAX_ERROR_TEXT = 32_000


class AttemptRunner:
    """Runs attempts for the pool; ``free`` gives a finished attempt's slot back and
    ``stopping`` says whether the pool is stopping (an interrupted attempt then goes
    back to the queue)."""

    def __init__(
        self,
        *,
        codec: Codec,
        bus: EventBus,
        completer: Completer,
        node: str,
        settings: Callable[[], Settings],
        clock: Callable[[], float],
        metrics: Metrics,
        rng: random.Random,
        threads: ThreadRunner,
        processes: ProcessRunner,
        free: Callable[[RunningTask], None],
        stopping: Callable[[], bool],
        logs: TaskLogs | None = None,
    ) -> None:
        self._codec = codec
        self._bus = bus
        self._completer = completer
        self._node = node
        self._settings = settings
        self._clock = clock
        self._metrics = metrics
        self._rng = rng
        self._threads = threads
        self._processes = processes
        self._free = free
        self._stopping = stopping
        self._logs = logs
        self._tracer = tracing.tracer()

    async def run(self, rt: RunningTask) -> None:
        """The body of a running task's asyncio task."""
        if self._tracer is None:
            await self._run(rt, None)
            return
        span = tracing.attempt_span(self._tracer, rt.claimed)
        outcome = "stopped"  # cancelled from outside: the lease brings the task back
        try:
            outcome = await self._run(rt, span)
        finally:
            span.end(outcome)

    async def _run(self, rt: RunningTask, span: tracing.AttemptSpan | None) -> str:
        """Run the attempt and hand its completion on; returns its outcome."""
        token = context.bind(rt.ctx)
        logs = None if self._logs is None else self._logs.open(rt.ctx, rt.claimed.id)
        completion: Completion | None
        try:
            self._arm_timers(rt)
            result_text = await self._attempt(rt)
            completion = self._outcome(rt, TaskState.SUCCEEDED, result=result_text)
        except asyncio.CancelledError:
            completion = self._after_cancel(rt)
        except BaseException as exc:
            completion = self._failure(rt, exc)
            if span is not None:
                span.failed(exc)
        finally:
            context.unbind(token)
            if logs is not None:
                logs.close()
            for timer in rt.timers:
                timer.cancel()
            self._free(rt)
            rt.finished = True
        if completion is None:  # the store already moved it
            return "cancelled" if rt.cancel_requested else "lease lost"
        outcome = self._record(rt, completion)
        self._completer.add(completion)
        return outcome

    def done(self, rt: RunningTask, task: asyncio.Task[None]) -> None:
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

    def _record(self, rt: RunningTask, completion: Completion) -> str:
        """Count the attempt in the metrics; returns its outcome."""
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
        return outcome

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
            rt.coro = coro = handler.fn(**kwargs)
            timed = TimedSteps(coro)
            try:
                return await timed
            finally:
                rt.ctx.cpu_time, rt.ctx.max_step = timed.total, timed.longest
                rt.coro = None
        if handler.executor == "thread":
            return await self._threads.run(handler.fn, kwargs, rt.ctx)
        level = TaskLogs.level()
        return await self._processes.run(handler, payload_json, rt.ctx, level)

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
            self._processes.notify_soft_timeout(rt.ctx)
        message = f"soft timeout of {rt.handler.soft_timeout:g} s passed"
        self._bus.emit(EventKind.SOFT_TIMEOUT, **rt.ctx.event_fields(), message=message)

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
        if rt.interrupted or self._stopping():
            return self._outcome(
                rt,
                TaskState.QUEUED,
                run_at=self._clock(),
                release=True,
                note="interrupted by shutdown; attempt not counted",
            )
        raise asyncio.CancelledError

    def _failure(self, rt: RunningTask, exc: BaseException) -> Completion:
        claimed = rt.claimed
        decision = decide(exc, claimed.attempts, claimed.max_retries, rt.handler.retry, self._rng)
        kind = decision.kind
        rt.error_summary = f"{kind}: {str(exc)[:160]}" if str(exc) else kind
        error = self._codec.seal(error_text(exc, claimed.attempts, claimed.max_retries + 1))
        if isinstance(exc, HardTimeout):
            self._bus.emit(EventKind.TIMED_OUT, **rt.ctx.event_fields(), message=str(exc))
        if decision.retry:
            run_at = self._clock() + decision.delay
            return self._outcome(rt, decision.state, error=error, run_at=run_at, note=decision.note)
        return self._outcome(rt, decision.state, error=error, note=decision.note)


def error_text(exc: BaseException, attempt: int, max_attempts: int) -> str:
    """The error as the task keeps it: its traceback, cut in the middle if too long."""
    if isinstance(exc, WorkerProcessLost):
        text = f"WorkerProcessLost: {exc} during attempt {attempt}/{max_attempts}\n"
    elif isinstance(exc, RemoteError):
        text = exc.text
    else:
        text = "".join(traceback.format_exception(exc))
    if len(text) > MAX_ERROR_TEXT:
        text = text[: MAX_ERROR_TEXT // 2] + "\n… (truncated) …\n" + text[-MAX_ERROR_TEXT // 2 :]
    return text
