"""Resource sampling: CPU, memory, event-loop lag, file descriptors, threads, children.

:class:`LoopLagMonitor` lives on the event loop: it asks to be called back every
``tick`` seconds and records how late the call comes — a loop blocked by a
handler shows up here. :class:`PsutilSampler` reads the process and the system
through psutil; its ``sample()`` is blocking (it reads ``/proc``), so the engine
runs it on a worker thread. Tests inject their own sampler (anything with a
``sample(children)`` method) to script CPU spikes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import psutil

from engine.metrics import TimeSeries


@dataclass(frozen=True, slots=True)
class ChildSample:
    """One worker process of the process executor."""

    pid: int
    cpu_percent: float
    rss: int


@dataclass(frozen=True, slots=True)
class ResourceSample:
    """One reading. CPU in percent (process: of one core; system: per core and the
    average), memory in bytes and percent, loop lag in seconds."""

    at: float
    process_cpu: float
    system_cpu: float
    cpu_per_core: tuple[float, ...]
    rss: int
    memory_percent: float
    loop_lag: float = 0.0
    open_fds: int = 0
    threads: int = 0
    children: tuple[ChildSample, ...] = field(default_factory=tuple)

    @property
    def children_rss(self) -> int:
        return sum(c.rss for c in self.children)


class Sampler(Protocol):
    def sample(self, children: Sequence[int]) -> ResourceSample: ...


class PsutilSampler:
    """Reads this process, its process-executor children and the system."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self._process.cpu_percent(None)  # the first call only sets the baseline
        psutil.cpu_percent(None, percpu=True)
        self._children: dict[int, psutil.Process] = {}

    def sample(self, children: Sequence[int]) -> ResourceSample:
        proc = self._process
        with proc.oneshot():
            cpu = proc.cpu_percent(None)
            rss = proc.memory_info().rss
            fds = proc.num_fds() if hasattr(proc, "num_fds") else 0
            threads = proc.num_threads()
        per_core = tuple(psutil.cpu_percent(None, percpu=True))
        return ResourceSample(
            at=time.time(),
            process_cpu=cpu,
            system_cpu=sum(per_core) / len(per_core) if per_core else 0.0,
            cpu_per_core=per_core,
            rss=rss,
            memory_percent=psutil.virtual_memory().percent,
            open_fds=fds,
            threads=threads,
            children=self._sample_children(children),
        )

    def _sample_children(self, pids: Sequence[int]) -> tuple[ChildSample, ...]:
        out = []
        for pid in pids:
            child = self._children.get(pid)
            try:
                if child is None:
                    child = self._children[pid] = psutil.Process(pid)
                    child.cpu_percent(None)
                out.append(ChildSample(pid, child.cpu_percent(None), child.memory_info().rss))
            except psutil.Error:
                self._children.pop(pid, None)
        for gone in set(self._children) - set(pids):
            del self._children[gone]
        return tuple(out)


class LoopLagMonitor:
    """How late the event loop runs a callback, as the worst delay per window."""

    #: 20 callbacks a second: a block of ``L`` seconds shows as at least ``L - tick``
    #: of lag (a 150 ms block passes the 100 ms ``loop_lag_threshold``), for about
    #: 0.2 % of a core less than a 25 ms tick costs an idle engine (bench idle CPU)
    def __init__(self, tick: float = 0.05) -> None:
        self.tick = tick
        self._worst = 0.0
        self._handle: asyncio.TimerHandle | None = None
        self._expected = 0.0

    def start(self) -> None:
        self._schedule()

    def _schedule(self) -> None:
        loop = asyncio.get_running_loop()
        self._expected = loop.time() + self.tick
        self._handle = loop.call_at(self._expected, self._fire)

    def _fire(self) -> None:
        lag = asyncio.get_running_loop().time() - self._expected
        self._worst = max(self._worst, lag)
        self._schedule()

    def take(self) -> float:
        """The worst lag since the last call (seconds), including a callback overdue now."""
        with contextlib.suppress(RuntimeError):
            overdue = asyncio.get_running_loop().time() - self._expected
            self._worst = max(self._worst, overdue)
        worst, self._worst = max(0.0, self._worst), 0.0
        return worst

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


RESOURCE_SERIES = ("process_cpu", "system_cpu", "rss", "memory_percent", "loop_lag", "open_fds")


class ResourceHistory:
    """The latest sample and one value per second of each gauge over 10 minutes."""

    def __init__(self) -> None:
        self.latest: ResourceSample | None = None
        self.series = {name: TimeSeries() for name in RESOURCE_SERIES}

    def add(self, sample: ResourceSample) -> None:
        self.latest = sample
        for name in RESOURCE_SERIES:
            self.series[name].append(float(getattr(sample, name)))

    def values(self) -> dict[str, tuple[float, ...]]:
        return {name: s.values() for name, s in self.series.items()}
