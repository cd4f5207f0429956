"""The read-only picture of an engine that ``engine.snapshot()`` returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from engine.model import AllPaused, TaskState
from engine.settings import Settings

if TYPE_CHECKING:
    from engine.autoscale import ScaleDecision
    from engine.metrics import MetricsView
    from engine.resources import ResourceSample

Severity = Literal["info", "warning", "critical"]
SEVERITY_ORDER: Mapping[str, int] = {"critical": 0, "warning": 1, "info": 2}


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """One worker slot: idle, busy (with its task), or retiring after a shrink."""

    id: str
    state: Literal["idle", "busy", "retiring"]
    task_id: str | None = None
    handler: str | None = None
    queue: str | None = None
    executor: str | None = None
    attempt: int | None = None
    elapsed: float | None = None
    progress: float | None = None
    message: str | None = None


@dataclass(frozen=True, slots=True)
class ProcessChild:
    """One worker process of the ``process`` executor: how much it has run and holds.

    ``growth`` is how fast its memory (RSS) grew per task over its last task
    boundaries (bytes per task, a least-squares slope; None before there are enough);
    ``alive`` is False for a child already replaced, kept a while for the leak finding.
    """

    pid: int
    tasks: int
    rss: int | None
    handlers: tuple[str, ...] = ()
    growth: float | None = None
    alive: bool = True


@dataclass(frozen=True, slots=True)
class QueueInfo:
    """One named queue: how many tasks wait in it, and whether it is paused."""

    name: str
    depth: int
    paused: bool
    counts: Mapping[TaskState, int] = field(default_factory=dict)
    #: of its ``running`` tasks, those held ready by this engine, not yet started
    buffered: int = 0


@dataclass(frozen=True, slots=True)
class Finding:
    """Something holding the engine back, the numbers that show it, and what to do.

    ``action`` is the engine command that applies the suggestion, e.g.
    ``("set_workers", {"n": 12})``, or None when it takes a human. ``node`` names
    the node that reported it, for findings read from node rows (an attached
    console); None for the engine's own.
    """

    severity: Severity
    title: str
    evidence: str
    suggestion: str
    action: tuple[str, Mapping[str, Any]] | None = None
    rule: str = ""
    node: str | None = None


@dataclass(frozen=True)
class EngineSnapshot:
    """Counts, workers, rates and settings at one moment; cheap to take."""

    at: float
    node: str
    store: str
    running: bool
    encrypted: bool
    worker_count: int
    busy_workers: int
    workers: tuple[WorkerInfo, ...]
    counts: Mapping[TaskState, int]
    queues: Mapping[str, QueueInfo]
    throughput: float
    failures_per_minute: float
    settings: Settings
    resources: ResourceSample | None = None
    findings: tuple[Finding, ...] = ()
    stats: Mapping[str, int] = field(default_factory=dict)
    metrics: MetricsView | None = None
    resource_series: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    autoscale: ScaleDecision | None = None
    #: tasks claimed and held ready for a worker (leased, counted as running in
    #: ``counts``, not yet started; see the ``prefetch`` setting)
    buffered: int = 0
    #: everything paused (``Engine.pause_all``, from any process): who, when, why
    all_paused: AllPaused | None = None
    #: this engine's worker processes (``process`` executor), oldest first
    process_children: tuple[ProcessChild, ...] = ()

    @property
    def paused_queues(self) -> frozenset[str]:
        return frozenset(q.name for q in self.queues.values() if q.paused)

    @property
    def queued(self) -> int:
        return self.counts.get(TaskState.QUEUED, 0)
