"""The Engine: the public face of the task engine, a thin façade over its parts.

Each part is a class in its own module with its own state, built by
:class:`engine.runtime.Runtime` and sharing an :class:`engine.state.EngineState`;
every method here delegates to one of them."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any, overload

from engine import webhook
from engine.actor import Actor
from engine.client import ClientSession, open_mode
from engine.cluster import UNSERVED_SCAN
from engine.codec import Codec
from engine.commands import States
from engine.config import Config, Layers
from engine.enqueue import Preparer
from engine.events import EventBus, EventKind, Subscription
from engine.faults import FaultPlan
from engine.handle import TaskHandle
from engine.limits import FlowLimits
from engine.model import (
    CommandResult,
    NodeInfo,
    ScheduleInfo,
    TaskId,
    TaskRecord,
    TaskState,
    WorkflowRecord,
)
from engine.nodes import node_name
from engine.reads import TaskPage
from engine.registry import Handler, Registry, build_handler
from engine.resources import Sampler
from engine.runtime import Runtime
from engine.saved_settings import SettingInfo
from engine.schedule import ScheduleSpec
from engine.services import ExpireHook
from engine.settings import Settings
from engine.shutdown import StopReport
from engine.snapshot import EngineSnapshot
from engine.state import EngineState
from engine.store import open_store
from engine.workers import check_workers
from engine.workflow import Workflow

__all__ = ["Engine"]


class Engine:
    """A durable task engine. Use ``async with engine:`` to run it.

    ``store``: ``sqlite:///path.db``, a path or ``postgresql://…`` (default: the config's, else
    ``sqlite:///taskdeck.db``). ``workers``: concurrent tasks (0 = enqueue only). ``config``: a
    ``load_config()`` to start from; ``interface``: what changes made here are recorded as (api,
    cli, console). ``encryption_key`` or ``keys=[new, old]``: Fernet keys for payloads, results
    and errors at rest. ``strict_handlers=False`` lets a producer enqueue handler names it has
    not registered. ``resource_sampler`` replaces the psutil sampler (tests script CPU spikes
    with it). ``faults`` (crash tests only) makes the process die at a named point (see
    :mod:`engine.faults`). Other keyword arguments are settings (see :class:`Settings`).
    """

    def __init__(
        self,
        store: str | Path | None = None,
        workers: int = 4,
        *,
        encryption_key: str | bytes | None = None,
        keys: Sequence[str | bytes] | None = None,
        strict_handlers: bool = True,
        settings: Settings | Mapping[str, Any] | None = None,
        config: Config | None = None,
        interface: str = "api",
        on_expire: ExpireHook | None = None,
        clock: Callable[[], float] = time.time,
        name: str | None = None,
        resource_sampler: Sampler | None = None,
        faults: FaultPlan | None = None,
        **overrides: Any,
    ) -> None:
        codec = Codec.of(encryption_key, keys)
        layers = Layers.build(settings, config, overrides)
        current, actor = layers.settings(), Actor.here(interface)
        count = check_workers(workers, current.max_workers)
        self.node = node = name or node_name()
        self._store = open_store(layers.store_url(store), codec, clock, by=node, faults=faults)
        self._registry, self._codec, self._bus = Registry(), codec, EventBus(current.event_buffer)
        state = self._state = EngineState(self._store, self._registry, layers, count, actor)
        preparer = Preparer(self._registry, codec, strict_handlers, state.current_settings, clock)
        runtime = self._runtime = Runtime(
            state, codec, self._bus, clock, node, preparer, self.task, resource_sampler, on_expire
        )
        self._submit, self._reads, self._commands = runtime.submit, runtime.reads, runtime.commands
        self._schedules, self._nodes, self._saved = runtime.schedules, runtime.nodes, runtime.saved
        self.alerts = runtime.alerts  #: rules, channels, alerts (engine.alerts.part.Alerts)
        self.history = runtime.history  #: trends(), stats() (engine.history.part.History)
        self.audit = runtime.audit  #: who did what: entries, note() (engine.audit.Audit)
        self.diagnose = runtime.diagnose  #: why(), failures() (engine.diagnose.Diagnose)
        self.ops = runtime.ops  #: bulk operations: start, get, list, abort, wait (engine.ops)
        self.logs = runtime.task_logs.lines  #: ``await engine.logs(id, after=None)``: log lines
        self.stack = runtime.stacks.stack  #: ``await engine.stack(id)``: a running task's stack
        self.task(
            name=webhook.WEBHOOK_HANDLER, queue=webhook.WEBHOOK_QUEUE,
            retries=webhook.WEBHOOK_RETRIES, retry=webhook.RETRY,
        )(webhook.make_handler(self.get, state.current_settings))  # fmt: skip

    # -- registration -----------------------------------------------------------
    @overload
    def task(self, fn: Callable[..., Any], /) -> TaskHandle: ...

    @overload
    def task(
        self, fn: None = None, /, **options: Any
    ) -> Callable[[Callable[..., Any]], TaskHandle]: ...

    def task(
        self, fn: Callable[..., Any] | None = None, /, **options: Any
    ) -> TaskHandle | Callable[[Callable[..., Any]], TaskHandle]:
        """Register a handler: ``@engine.task`` or ``@engine.task(name=…, retries=…)``."""

        def register(func: Callable[..., Any]) -> TaskHandle:
            handler = self._registry.add(build_handler(func, options))
            self._state.kick()
            return TaskHandle(handler, self.enqueue, self)

        return register if fn is None else register(fn)

    def periodic(
        self,
        every: float | None = None,
        *,
        cron: str | None = None,
        tz: str = "UTC",
        schedule_name: str | None = None,
        payload: Mapping[str, Any] | None = None,
        **task_options: Any,
    ) -> Callable[[Callable[..., Any] | TaskHandle], TaskHandle]:
        """Register a handler that runs on a schedule: ``@engine.periodic(every=300)`` or
        ``(cron="0 2 * * *", tz="Europe/Berlin")``; stored, so each run is enqueued once
        (no skip, no double) across restarts and nodes. Other keyword arguments are
        ``@engine.task`` options; the schedule is named after the handler by default."""
        return self._schedules.periodic(every, cron, tz, schedule_name, payload, task_options)

    def add_schedule(
        self,
        handler: str,
        *,
        every: float | None = None,
        cron: str | None = None,
        tz: str = "UTC",
        name: str | None = None,
        payload: Mapping[str, Any] | None = None,
        queue: str | None = None,
        priority: int | str | None = None,
    ) -> ScheduleSpec:
        """Define a periodic run of ``handler`` (see :meth:`periodic`); the store learns
        of it when the engine starts (at once if it is running)."""
        return self._schedules.add(handler, every, cron, tz, name, payload, queue, priority)

    @property
    def handlers(self) -> list[Handler]:
        """The handlers registered here (not the built-in ``taskdeck.*`` ones)."""
        names = self._registry.names()
        return [self._registry.get(n) for n in names if not n.startswith("taskdeck.")]

    @property
    def registry(self) -> Registry:
        return self._registry

    # -- lifecycle --------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._state.running

    @property
    def store_url(self) -> str:
        return self._store.url

    @property
    def encrypted(self) -> bool:
        return self._codec.encrypted

    @property
    def settings(self) -> Settings:
        return self._state.settings

    @property
    def worker_count(self) -> int:
        return self._state.worker_count

    def flow_limits(self) -> FlowLimits | None:
        """The rate limits, concurrency limits and weights in force (None: none), from
        the settings and the handlers' ``rate_limit`` options (settings win)."""
        return self._state.flow_limits()

    async def start(self) -> None:
        """Open the store and start the workers and services."""
        await self._runtime.start(self)

    async def stop(self, grace: float | None = None) -> StopReport:
        """Graceful stop: finish or requeue running tasks (no attempt used), then close;
        done within grace + a small bound even when the store takes no writes (see
        :mod:`engine.shutdown`). Returns what it saved and what it could not."""
        return await self._runtime.stop(grace)

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def client(self, read_only: bool = False, create: bool = True) -> ClientSession[Engine]:
        """``async with engine.client(read_only=False, create=True) as e:`` opens the store
        for commands only: no workers, no background services (see :mod:`engine.client`)."""
        mode = open_mode(read_only, create)
        set_mode = partial(self._runtime.client_mode, owner=self)
        return ClientSession(self, self._store, mode, self._state.configure_store, set_mode)

    # -- enqueue ----------------------------------------------------------------
    async def enqueue(
        self,
        handler: str,
        payload: Mapping[str, Any] | None = None,
        *,
        priority: int | str | None = None,
        queue: str | None = None,
        delay: float | None = None,
        run_at: Any = None,
        unique_key: str | None = None,
        webhook: str | None = None,
    ) -> TaskId:
        """Enqueue one task; returns its id once the task is durably stored. ``run_at``:
        an aware datetime (or ``delay`` s); ``unique_key``: a held key adds nothing and
        returns the holder's id (``.deduplicated``); ``webhook``: a URL that gets the
        final record POSTed (see :mod:`engine.submit`)."""
        return await self._submit.enqueue(
            handler, payload, priority, queue, delay, run_at, unique_key, webhook
        )

    async def enqueue_many(self, items: Iterable[Any]) -> list[TaskId]:
        """All or none, in one transaction; items are ``(handler, payload[, {options}])``."""
        return await self._submit.enqueue_many(items)

    async def enqueue_workflow(self, flow: Workflow) -> WorkflowRecord:
        """Store a ``chain(...)`` or ``group(...)`` and all its steps in one transaction
        (every step checked first; an error names the step); returns the workflow."""
        return await self._submit.enqueue_workflow(flow)

    async def workflow(self, workflow_id: str | int) -> WorkflowRecord:
        """A chain or group with each step's task and state; ``LookupError`` if none."""
        return await self._submit.workflow(workflow_id)

    # -- reading ------------------------------------------------------------------
    async def counts(self, queue: str | None = None) -> dict[TaskState, int]:
        """Tasks per state now, read from the store (every process's work included),
        for one queue or all."""
        return await self._reads.counts(queue)

    async def get(self, task_id: str | int) -> TaskRecord:
        """The task's record (with its timeline); ``LookupError`` if there is none."""
        return await self._reads.get(task_id)

    async def tasks(
        self,
        state: TaskState | str | None = None,
        queue: str | None = None,
        limit: int = 100,
        offset: int = 0,
        *,
        handler: str | None = None,
        id_prefix: str | None = None,
        text: str | None = None,
        where: str | None = None,
    ) -> TaskPage:
        """A page of tasks: queued by priority, finished newest first, others by id;
        ``where``: a query (README: "Finding tasks"), e.g. ``state=failed error~HEIC``."""
        return await self._reads.tasks(state, queue, limit, offset, handler, id_prefix, text, where)

    async def position(
        self,
        task_id: str | int,
        state: TaskState | str | None = None,
        queue: str | None = None,
        *,
        handler: str | None = None,
    ) -> int | None:
        """The task's offset in ``tasks(state, queue, handler=...)`` (0 first), or None."""
        return await self._reads.position(task_id, state, queue, handler)

    async def tasks_around(
        self,
        task_id: str | int,
        state: TaskState | str | None = None,
        queue: str | None = None,
        limit: int = 100,
        before: int = 0,
        *,
        handler: str | None = None,
    ) -> TaskPage | None:
        """The page of ``tasks(...)`` holding the task, ``before`` tasks ahead of it
        (``page.offset`` says where); None when not in that list. Fast at any depth."""
        return await self._reads.tasks_around(task_id, state, queue, limit, before, handler)

    async def wait(self, task_id: str | int, timeout: float | None = None) -> TaskRecord:
        """Wait until the task is finished; returns its record (TimeoutError after timeout s)."""
        return await self._reads.wait(task_id, timeout)

    def events(
        self, kinds: Iterable[EventKind | str] | None = None, maxsize: int | None = None
    ) -> Subscription:
        """``async for event in engine.events()``; a slow reader's overflow is dropped."""
        return self._bus.subscribe(kinds, maxsize)

    def snapshot(self) -> EngineSnapshot:
        """Counts, workers, queues, rates and settings now. Cheap: no I/O."""
        return self._reads.snapshot()

    # -- operator commands ----------------------------------------------------------
    async def cancel(self, task_id: str | int, reason: str | None = None) -> TaskState:
        """Cancel a queued, scheduled or running task; returns its previous state (a
        running thread task sees ``current_task().cancelled``; a process task's worker
        process is stopped)."""
        return await self._commands.cancel(task_id, reason)

    async def reprioritize(self, task_id: str | int, priority: int | str) -> int:
        """A queued or scheduled task's new priority (for the next claim); returns the old."""
        return await self._commands.reprioritize(task_id, priority)

    async def retry(self, task_id: str | int) -> TaskState:
        """Queue a failed or cancelled task again (with a fresh retry budget)."""
        return await self._commands.retry(task_id)

    async def edit(self, task_id: str | int, **changes: Any) -> TaskRecord:
        """Change a task that is not running: ``payload``, ``priority``, ``queue``, ``retries``,
        ``run_at`` (checked like enqueue); ``retry=True`` queues a failed or cancelled one
        again; ``note``. The timeline keeps the old values (see :mod:`engine.edit`)."""
        return await self.ops.edit(task_id, **changes)

    async def retry_all(
        self,
        state: States = TaskState.FAILED,
        *,
        queue: str | None = None,
        handler: str | None = None,
    ) -> int:
        """Queue every failed (or cancelled) task matching the filter again; returns how many."""
        return await self._commands.retry_all(state, queue, handler)

    async def purge(
        self,
        state: States = TaskState.FAILED,
        *,
        queue: str | None = None,
        handler: str | None = None,
        ids: Sequence[str | int] | None = None,
    ) -> int:
        """Delete finished tasks (succeeded, failed or cancelled); returns how many."""
        return await self._commands.purge(state, queue, handler, ids)

    async def set_workers(self, n: int) -> int:
        """Resize the pool: grow at once; shrink after current tasks. Returns the old size."""
        return await self._commands.set_workers(n)

    async def update_settings(self, **changes: Any) -> Settings:
        """Change settings, all or nothing (``SettingsError`` names every bad one); saved in
        the store with who and when, for every node (see :mod:`engine.saved_settings`)."""
        return await self._saved.update(changes)

    async def reset_settings(self, *names: str) -> Settings:
        """Undo runtime changes: back to the file, env, flag or code value, on every node."""
        return await self._saved.reset(names)

    async def settings_info(self) -> list[SettingInfo]:
        """Every setting: value, source (default … runtime), who changed it and when."""
        return await self._saved.info()

    async def pause(self, queue: str) -> bool:
        """Stop claiming from ``queue`` (running tasks finish). Returns False if already paused."""
        return await self._commands.set_paused(queue, True)

    async def resume(self, queue: str) -> bool:
        """Claim from ``queue`` again. Returns False if it was not paused."""
        return await self._commands.set_paused(queue, False)

    async def pause_all(self, note: str | None = None) -> bool:
        """No task starts on any node until :meth:`resume_all`; False if already so."""
        return await self._commands.set_all_paused(True, note)

    async def resume_all(self) -> bool:
        """Undo :meth:`pause_all`; False if everything was not paused."""
        return await self._commands.set_all_paused(False)

    async def drain(self, timeout: float | None = None) -> None:
        """Wait until nothing is queued, scheduled or running (paused queues aside)."""
        await self._commands.drain(timeout)

    async def apply_action(self, action: tuple[str, Mapping[str, Any]]) -> str:
        """Carry out a finding's suggested command, e.g. ``("set_workers", {"n": 12})``
        (set_workers, pause, resume or update_settings); returns what was done."""
        return await self._commands.apply_action(action)

    # -- schedules ------------------------------------------------------------------
    async def schedules(self) -> list[ScheduleInfo]:
        """Every stored schedule: rule, next run, last run and its task's state, paused."""
        return await self._schedules.stored()

    async def pause_schedule(self, name: str) -> bool:
        """Stop a schedule's runs; returns False if it was already paused."""
        return await self._schedules.set_paused(name, True)

    async def resume_schedule(self, name: str) -> bool:
        """Run a paused schedule again from its next time (no catch-up); False if not paused."""
        return await self._schedules.set_paused(name, False)

    async def trigger_schedule(self, name: str) -> str:
        """Enqueue one run of a schedule now (its next run stays); returns the task id."""
        return await self._schedules.trigger(name)

    # -- cluster ----------------------------------------------------------------------
    async def nodes(self) -> list[NodeInfo]:
        """Every engine process on this store (alive first), from their heartbeats."""
        return await self._nodes.nodes()

    async def unserved(
        self, nodes: Sequence[NodeInfo] | None = None, limit: int = UNSERVED_SCAN
    ) -> dict[str, int]:
        """Handlers queued tasks name and no alive node runs (see ``Nodes.unserved``)."""
        return await self._nodes.unserved(nodes, limit)

    async def send_command(
        self, action: str, args: Mapping[str, Any] | None = None, *, node: str = "*"
    ) -> int:
        """Send ``set_workers`` {n}, ``pause``/``resume`` {queue}, ``update_settings`` or
        ``stop_task`` {task_id} to one node or every node (``"*"``); returns its id."""
        return await self._nodes.send_command(action, args, node=node)

    async def command_results(self, command_id: int) -> list[CommandResult]:
        """What each node did with a command so far (``LookupError``: not a command id)."""
        return await self._nodes.command_results(command_id)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<Engine {self.node} {self.store_url} {state} workers={self.worker_count}>"
