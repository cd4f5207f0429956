"""What the engine's parts share: the settings in force, whether the engine runs, and
the pool and services while it runs. One object, owned by the Engine, handed to each
part, so no part needs the Engine itself."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from engine.actor import Actor
from engine.client import read_only_refusal
from engine.cluster import NodeKeeper
from engine.completions import Completer
from engine.config import Layers
from engine.errors import EngineNotRunning
from engine.limits import FlowLimits, flow_limits
from engine.monitor import Monitor
from engine.pool import WorkerPool
from engine.registry import Registry
from engine.schedule import Scheduler
from engine.services import Promoter
from engine.settings import Settings
from engine.store.base import Store


class EngineState:
    """Settings, worker count and counters always; pool, completer and services (None
    when stopped) while running. Parts read them here each time, so a restart or a
    settings change reaches every part at once."""

    def __init__(
        self, store: Store, registry: Registry, layers: Layers, workers: int, actor: Actor
    ) -> None:
        self.store = store
        self.registry = registry
        self.layers = layers  # the settings below the runtime changes
        self.settings = layers.settings()
        self.actor = actor  # who this engine's operator actions are by
        self.workers = workers  # the pool's size while stopped (applied on start)
        self.running = False
        self.read_only = False
        self.started_at = 0.0
        self.pool: WorkerPool | None = None
        self.completer: Completer | None = None
        self.promoter: Promoter | None = None
        self.scheduler: Scheduler | None = None
        self.node_keeper: NodeKeeper | None = None
        self.monitor: Monitor | None = None
        self.progress: asyncio.Event | None = None  # set when tasks finish or move
        self.background: set[asyncio.Task[Any]] = set()  # hooks and schedule syncs
        self.stats = {"stale_completions": 0, "rescued": 0, "interrupted": 0, "retries": 0}
        self.stats["left_running"] = 0  # completions a stop could not save
        self.stats["given_back"] = 0  # held ready tasks returned unstarted
        self._flow: FlowLimits | None = None
        self._flow_settings: Settings | None = None
        self._flow_handlers = 0

    def current_settings(self) -> Settings:
        """For the parts, which read settings each cycle (so runtime changes apply)."""
        return self.settings

    @property
    def worker_count(self) -> int:
        return self.pool.size if self.pool is not None else self.workers

    def flow_limits(self) -> FlowLimits | None:
        """The rate limits, concurrency limits and weights in force (None: none), from
        the settings and the handlers' ``rate_limit`` options (settings win)."""
        s = self.settings  # replaced on update, never changed: identity says "same"
        if self._flow_settings is not s or self._flow_handlers != len(self.registry):
            handler_rates = {h.name: h.rate_limit for h in self.registry if h.rate_limit}
            handler_rates.update(s.handler_rate_limits)
            limits = flow_limits(
                s.queue_rate_limits, handler_rates, s.queue_concurrency, s.queue_weights
            )
            self._flow = limits or None
            self._flow_settings, self._flow_handlers = s, len(self.registry)
        return self._flow

    def configure_store(self) -> None:
        s = self.settings
        self.store.configure(
            durability=s.durability, busy_timeout=s.busy_timeout, lock_timeout=s.lock_timeout
        )

    def require_running(self) -> None:
        if not self.running:
            raise EngineNotRunning(
                "the engine is not running: use `async with engine:` or `await engine.start()`"
            )

    def require_writable(self, verb: str) -> None:
        self.require_running()
        if self.read_only:
            raise read_only_refusal(verb)

    def kick(self) -> None:
        """Wake the pool (tasks may be ready); nothing when stopped."""
        if self.pool is not None:
            self.pool.kick()

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run ``work`` in the background; a stop waits for it (then cancels it)."""
        task = asyncio.get_running_loop().create_task(work)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
