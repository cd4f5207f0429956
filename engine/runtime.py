"""Builds the engine's parts, and starts and stops what runs: the completer, the
worker pool and the background services; a graceful stop that ends on time (see
:mod:`engine.shutdown`); and the commands-only mode of ``engine.client()``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from functools import partial

from engine.alerts.part import (
    ALERT_HANDLER,
    ALERT_QUEUE,
    ALERT_RETRIES,
    RETRY,
    Alerts,
    AlertService,
)
from engine.audit import Audit
from engine.checks import check_seconds
from engine.cluster import NodeKeeper
from engine.codec import Codec
from engine.commands import Commands
from engine.completions import Completer
from engine.diagnose import Diagnose
from engine.edit import Editor
from engine.enqueue import Preparer
from engine.errors import EngineNotRunning
from engine.events import EventBus, EventKind
from engine.history.part import History, HistoryService
from engine.lifecycle import StopWatch
from engine.live_stack import Stacks
from engine.metrics import Metrics
from engine.model import NodeCommand
from engine.monitor import Monitor
from engine.nodes import Nodes
from engine.ops import Operations
from engine.outcomes import Outcomes
from engine.pool import WorkerPool
from engine.reads import Reads
from engine.resources import Sampler
from engine.saved_settings import SavedSettings
from engine.schedule import Scheduler
from engine.schedules import Register, Schedules
from engine.services import (
    Cleaner,
    ExpireHook,
    LeaseKeeper,
    LogFlusher,
    ProgressReporter,
    Promoter,
    Rescuer,
    Service,
)
from engine.shutdown import StopReport, left, mark_stopped, save_completions, stop_deadline
from engine.state import EngineState
from engine.store.base import OpenMode
from engine.submit import Submitter
from engine.tasklog import TaskLogs
from engine.waiters import Waiters

log = logging.getLogger(__name__)


class Runtime:
    """Builds the parts (``submit``, ``reads``, ``nodes``, ``commands``, ``schedules``
    and the completion fan-out) and starts and stops the running ones; owns their
    asyncio tasks."""

    def __init__(
        self,
        state: EngineState,
        codec: Codec,
        bus: EventBus,
        clock: Callable[[], float],
        node: str,
        preparer: Preparer,
        register: Register,
        sampler: Sampler | None,
        on_expire: ExpireHook | None,
    ) -> None:
        store, metrics = state.store, Metrics()
        self._state, self._store, self._codec, self._bus = state, store, codec, bus
        self._metrics, self._clock, self._node = metrics, clock, node
        self._sampler, self._on_expire = sampler, on_expire
        self._waiters = waiters = Waiters()
        writable = lambda: state.running and not state.read_only  # noqa: E731
        audit = self.audit = Audit(
            store, lambda: state.actor, partial(setattr, state, "actor"), clock,
            state.current_settings, writable,
        )  # fmt: skip
        self.submit = Submitter(state, store, bus, metrics, preparer, node, clock, audit)
        self.reads = Reads(state, store, codec, bus, metrics, waiters, node, clock)
        self.nodes = Nodes(state, store, bus, node, clock, self.reads.snapshot, audit)
        self.task_logs = TaskLogs(store, state.current_settings, codec, state.require_running)

        async def resize(n: int) -> int:
            return await self.commands.resize(n)

        self.saved = SavedSettings(state, store, bus, clock, resize, audit)
        self.commands = Commands(
            state, store, codec, bus, waiters, self.nodes, node, self.saved, audit
        )
        self.schedules = Schedules(
            state, store, codec, bus, metrics, clock, preparer, register, audit
        )
        self.stacks = Stacks(state, store, node, clock)
        self.diagnose = Diagnose(
            state, store, codec, self.reads, self.nodes, self.commands, audit, node, clock
        )
        editor = Editor(state, store, codec, preparer, self.commands, audit)
        self.ops = Operations(state, store, self.commands, audit, node, clock, editor)
        self._outcomes = Outcomes(state, store, state.registry, bus, metrics, waiters)
        self.alerts = Alerts(
            store, codec, state.current_settings, node, self.reads.snapshot,
            lambda: state.registry.queues(state.settings.routes), self.nodes.nodes, audit,
        )  # fmt: skip
        self.alerts.configure(state.layers.config.alerts or None)  # checked by load_config
        register(name=ALERT_HANDLER, queue=ALERT_QUEUE, retries=ALERT_RETRIES, retry=RETRY)(
            self.alerts.deliver
        )
        self.history = History(
            store, state.current_settings, node, clock,
            lambda: {q.name: q.depth for q in self.reads.snapshot().queues.values()},
        )  # fmt: skip
        metrics.recorder = self.history.recorder
        self.services: list[Service] = []
        self.service_tasks: list[asyncio.Task[None]] = []
        self._unstopped = StopWatch()  # warns if a started engine is never stopped

    async def start(self, owner: object) -> None:
        """Open the store and start the workers and services (``owner``: the engine,
        watched for being dropped while running)."""
        if self._state.running:
            return
        self._state.configure_store()  # the open waits for locks within lock_timeout
        await self._store.open()
        try:
            await self._start_on_open_store(owner)
        except BaseException:
            await self._abort_start()
            raise

    async def _start_on_open_store(self, owner: object) -> None:
        state = self._state
        state.started_at = self._clock()  # a change saved after this reaches it as a command
        await self.saved.load()
        state.configure_store()
        state.progress = asyncio.Event()
        outcomes = self._outcomes
        state.completer = Completer(
            self._store, outcomes.on_report, outcomes.on_store_error, before=self.task_logs.flush
        )
        state.completer.start()
        pool = state.pool = WorkerPool(
            store=self._store,
            registry=state.registry,
            codec=self._codec,
            bus=self._bus,
            completer=state.completer,
            node=self._node,
            settings=state.current_settings,
            clock=self._clock,
            metrics=self._metrics,
            flow=state.flow_limits,
            logs=self.task_logs,
        )
        self.task_logs.install()
        # The store wakes the pool when another process or node makes tasks ready
        # (PostgreSQL: LISTEN/NOTIFY; SQLite: a datagram socket); the poll stays.
        self._store.set_wakeup(pool.kick)
        await self.schedules.sync_all()
        # Before the services and the pool start: no claim waits for it, and the first
        # heartbeat already sees the pool's size (a node at 0 workers does not join).
        resumed = await self.ops.resume()
        self.services = self._build_services(pool)
        loop = asyncio.get_running_loop()
        self.service_tasks = [
            loop.create_task(s.run(), name=f"taskdeck-{s.name}") for s in self.services
        ]
        pool.resize(state.workers)
        pool.start()
        state.running = True
        self.ops.relaunch(resumed)
        self._unstopped.started(owner, self._store.url)
        self._bus.emit(
            EventKind.ENGINE_STARTED,
            message=f"{self._node} on {self._store.url}, {state.workers} workers",
        )

    async def _apply_command(self, command: NodeCommand) -> str:
        """Carry out a command another node sent (a ``stack`` one is answered by the
        live-stack part, the others by the commands part)."""
        if command.action == "stack":
            return await self.stacks.on_command(int(command.args["task_id"]))
        return await self.commands.apply_command(command)

    def _build_services(self, pool: WorkerPool) -> list[Service]:
        state, store, bus, clock = self._state, self._store, self._bus, self._clock
        settings, outcomes = state.current_settings, self._outcomes
        state.promoter = Promoter(store, settings, bus, clock, outcomes.on_promoted)
        state.node_keeper = NodeKeeper(
            store, settings, bus, self.nodes.describe_node, self._apply_command, clock
        )
        state.scheduler = Scheduler(store, settings, bus, clock, self.schedules.on_fired)
        state.monitor = Monitor(
            store,
            settings,
            bus,
            metrics=self._metrics,
            pool=pool,
            set_workers=self.commands.resize,
            handler_queues=lambda: state.registry.queues(state.settings.routes),
            sampler=self._sampler,
            stack=self.stacks.local,
        )
        return [
            state.scheduler,
            LeaseKeeper(store, settings, bus, pool, self._node),
            Rescuer(store, settings, bus, self._node, outcomes.on_rescued),
            state.promoter,
            Cleaner(store, settings, bus, self._on_expire, self.audit.forget),
            ProgressReporter(store, settings, bus, pool, self._node, codec=self._codec),
            LogFlusher(store, settings, bus, self.task_logs),
            state.node_keeper,
            state.monitor,
            AlertService(store, settings, bus, self.alerts),
            HistoryService(store, settings, bus, self.history, clock),
        ]

    async def _abort_start(self) -> None:
        """Undo a start that failed after the store opened: nothing keeps running and
        the store is closed, so the engine can be started again (or dropped)."""
        state = self._state
        if state.pool is not None:
            await state.pool.stop(0)
        if state.completer is not None:
            await state.completer.stop()
        for task in self.service_tasks:
            task.cancel()
        await asyncio.gather(*self.service_tasks, return_exceptions=True)
        self.service_tasks = []
        state.pool = state.completer = None
        self.task_logs.uninstall()
        try:
            await self._store.close()
        except Exception as exc:  # the store may be what failed
            log.warning("could not close the store after a failed start: %s", exc)

    async def stop(self, grace: float | None = None) -> StopReport:
        """Graceful stop: finish or requeue running tasks (no attempt used), then close;
        done within grace + a small bound even when the store takes no writes."""
        state = self._state
        pool, completer = state.pool, state.completer
        if not state.running or pool is None or completer is None:
            return StopReport()
        wait = state.settings.shutdown_grace if grace is None else check_seconds("grace", grace)
        self._bus.emit(EventKind.ENGINE_STOPPING, message=f"grace {wait:g} s")
        state.workers = pool.size
        deadline = stop_deadline(wait, state.settings.lock_timeout)
        self._store.give_up_at(deadline)  # writes blocked by another process end in time
        returned = state.stats["interrupted"]
        try:
            await self.ops.stop()
            await pool.stop(wait)
            await save_completions(completer, deadline)
            if state.background:  # completion hooks still running
                await asyncio.wait(state.background, timeout=max(left(deadline), 0.1))
        finally:
            await self._close(completer, deadline)
        unsaved = state.stats["left_running"] = completer.pending
        reason = completer.last_error if unsaved else None
        return StopReport(state.stats["interrupted"] - returned, unsaved, reason)

    async def _close(self, completer: Completer, deadline: float) -> None:
        """The end of a stop: services cancelled, node row marked, store closed."""
        state = self._state
        await completer.stop()
        self.task_logs.uninstall()
        await self.task_logs.flush()  # lines of attempts that never completed
        for task in [*self.service_tasks, *state.background]:
            task.cancel()
        await asyncio.gather(*self.service_tasks, *state.background, return_exceptions=True)
        self.service_tasks = []
        try:
            await self.history.flush(everything=True)  # the minutes not written yet
        except Exception as exc:  # the store may be what is failing
            log.warning("the last minutes of metrics history were not written: %s", exc)
        if state.node_keeper is not None and state.node_keeper.joined:
            await mark_stopped(self._store, self._node, deadline)
        await self._store.close()
        state.running = False
        self._unstopped.stopped()
        self._waiters.fail_all(EngineNotRunning("the engine stopped"))
        self._bus.emit(EventKind.ENGINE_STOPPED, message=self._node)

    async def client_mode(self, mode: OpenMode | None, owner: object) -> None:
        """``engine.client()`` opened the store in ``mode`` (None: closed it); an open
        one takes the settings saved in the store."""
        state = self._state
        state.running, state.read_only = mode is not None, mode is not None and mode.read_only
        if mode is None:
            self._unstopped.stopped()
            return
        self._unstopped.started(owner, self._store.url)
        await self.saved.load()
