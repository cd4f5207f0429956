"""Always-on metrics: cheap to record, summarised only when someone looks.

Recording a finished attempt is a handful of additions and one bounded-deque
append; percentiles are computed from the recent samples when a view is built
(about once a second), never on the hot path.

- :class:`RollingCounter` — events (or seconds of work) in 1-second buckets.
- :class:`Reservoir` — the most recent N samples, for percentiles.
- :class:`TimeSeries` — one value per second over the last 10 minutes.
- :class:`Buckets` — every value since the start in fixed buckets (for Prometheus
  histograms: counts only grow).
- :class:`Metrics` — what the pool and the engine feed, and :meth:`Metrics.view`.
"""

from __future__ import annotations

import bisect
import itertools
import math
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from engine.attempt_sink import AttemptSink

SERIES_POINTS = 600  # 10 minutes at 1 s
RECENT = 60.0  # "the last minute"


class RollingCounter:
    """Adds up values in 1-second buckets; reports totals and rates over recent windows."""

    __slots__ = ("_buckets", "_clock", "_horizon", "_since", "total")

    def __init__(self, horizon: int = 600, clock: Callable[[], float] = time.monotonic) -> None:
        self._buckets: deque[list[float]] = deque()  # [second, amount]
        self._horizon = horizon
        self._clock = clock
        self._since = clock()
        self.total = 0.0

    def add(self, amount: float = 1, now: float | None = None) -> None:
        """Add ``amount`` at ``now`` (this counter's clock; read if not given)."""
        second = int(self._clock() if now is None else now)
        buckets = self._buckets
        if buckets and buckets[-1][0] == second:
            buckets[-1][1] += amount
        else:
            buckets.append([second, amount])
            while buckets and buckets[0][0] <= second - self._horizon:
                buckets.popleft()
        self.total += amount

    def count(self, window: float) -> float:
        """The sum over the last ``window`` seconds (whole buckets)."""
        since = int(self._clock()) - int(window)
        total = 0.0
        for second, amount in reversed(self._buckets):
            if second <= since:
                break
            total += amount
        return total

    def rate(self, window: float = 10.0) -> float:
        """Per second over the last ``window`` seconds (or since the counter was made,
        if that is shorter: a young counter is not diluted by time it did not see)."""
        span = min(window, max(1.0, self._clock() - self._since))
        return self.count(window) / span if span > 0 else 0.0


class Reservoir:
    """The most recent ``size`` samples, with their times."""

    __slots__ = ("_samples",)

    def __init__(self, size: int = 1024) -> None:
        self._samples: deque[tuple[float, float]] = deque(maxlen=size)

    def add(self, value: float, at: float) -> None:
        self._samples.append((at, value))

    def values(self, since: float | None = None) -> list[float]:
        if since is None:
            return [v for _, v in self._samples]
        return [v for t, v in self._samples if t >= since]

    def __len__(self) -> int:
        return len(self._samples)


def percentile(sorted_values: list[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) of already-sorted values, nearest rank; None if empty."""
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[index]


class TimeSeries:
    """One value per second over the last ``points`` seconds."""

    __slots__ = ("_values",)

    def __init__(self, points: int = SERIES_POINTS) -> None:
        self._values: deque[float] = deque(maxlen=points)

    def append(self, value: float) -> None:
        self._values.append(value)

    def values(self, last: int | None = None) -> tuple[float, ...]:
        if last is None or last >= len(self._values):
            return tuple(self._values)
        return tuple(self._values)[-last:]

    def __len__(self) -> int:
        return len(self._values)


#: Upper bounds (seconds) of the run-time and wait-time buckets: 1 ms to 1 hour.
BUCKET_BOUNDS = (
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Histogram:
    """Cumulative counts at each of ``bounds`` (the values at or below it), with the
    count and sum of every value; a Prometheus histogram's numbers."""

    bounds: tuple[float, ...]
    cumulative: tuple[int, ...]
    count: int
    sum: float


class Buckets:
    """Counts every value in the bucket of :data:`BUCKET_BOUNDS` it falls in; one
    ``bisect`` per value."""

    __slots__ = ("_counts", "count", "sum")

    def __init__(self) -> None:
        self._counts = [0] * (len(BUCKET_BOUNDS) + 1)  # the last: above every bound
        self.count = 0
        self.sum = 0.0

    def add(self, value: float) -> None:
        self._counts[bisect.bisect_left(BUCKET_BOUNDS, value)] += 1
        self.count += 1
        self.sum += value

    def histogram(self) -> Histogram:
        return Histogram(
            BUCKET_BOUNDS, tuple(itertools.accumulate(self._counts[:-1])), self.count, self.sum
        )


# ---------------------------------------------------------------------------
# What the pool records


@dataclass
class _HandlerMetrics:
    executor: str
    clock: Callable[[], float] = time.monotonic
    runs: int = 0
    successes: int = 0
    failures: int = 0
    retries: int = 0
    timeouts: int = 0
    run_total: float = 0.0
    run_min: float | None = None
    run_max: float | None = None
    cpu_total: float = 0.0
    cpu_runs: int = 0
    run_times: Reservoir = field(default_factory=Reservoir)
    waits: Reservoir = field(default_factory=Reservoir)
    cpu_ratios: Reservoir = field(default_factory=lambda: Reservoir(256))
    steps: Reservoir = field(default_factory=lambda: Reservoir(256))
    errors: deque[tuple[float, str]] = field(default_factory=lambda: deque(maxlen=256))
    run_buckets: Buckets = field(default_factory=Buckets)
    wait_buckets: Buckets = field(default_factory=Buckets)

    def __post_init__(self) -> None:
        self.busy = RollingCounter(clock=self.clock)  # seconds of work, per second
        self.attempts_recent = RollingCounter(clock=self.clock)
        self.failures_recent = RollingCounter(clock=self.clock)


@dataclass(frozen=True, slots=True)
class HandlerStats:
    """One handler's numbers. Times are seconds; ``impact`` is its share (0..1) of
    all worker busy time in the last minute."""

    name: str
    executor: str
    runs: int
    successes: int
    failures: int
    retries: int
    timeouts: int
    run_mean: float | None
    run_min: float | None
    run_max: float | None
    run_p50: float | None
    run_p95: float | None
    run_p99: float | None
    wait_p50: float | None
    wait_p95: float | None
    cpu_per_run: float | None
    cpu_ratio: float | None
    max_step: float | None
    impact: float
    attempts_last_minute: int
    failures_last_minute: int
    top_error: str | None
    top_error_count: int
    #: every attempt's run time and every start's queue wait since the engine started
    run_histogram: Histogram | None = None
    wait_histogram: Histogram | None = None


@dataclass(frozen=True, slots=True)
class QueueStats:
    """One queue: waiting tasks, the oldest one's age, and rates per second."""

    name: str
    depth: int
    paused: bool
    oldest_age: float | None
    arrival_rate: float
    completion_rate: float
    depth_trend: float  # tasks per second, over the last 30 s


@dataclass(frozen=True)
class MetricsView:
    """Everything the bottleneck rules and the autoscaler look at, at one moment."""

    at: float
    worker_count: int
    busy_workers: int
    utilization: float  # busy share of the pool over the last 30 s (0..1)
    arrival_rate: float  # enqueued per second, last 30 s
    done_rate: float  # finished (succeeded or failed) per second, last 30 s
    depth: int
    depth_trend: float  # tasks per second, last 30 s (positive = growing)
    handlers: Mapping[str, HandlerStats]
    queues: Mapping[str, QueueStats]
    series: Mapping[str, tuple[float, ...]]
    store_latency_p99: float | None
    mean_run: float | None  # over every handler, recent
    arrival_recent: float = 0.0  # enqueued per second, last 5 s (for following bursts)

    @property
    def backlog_growing(self) -> bool:
        return self.depth_trend > 0.0 and self.depth > 0


SERIES_NAMES = ("enqueued", "done", "failed", "depth", "busy", "workers")


class Metrics:
    """The engine's metrics collector (one per engine; only touched on its loop)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._handlers: dict[str, _HandlerMetrics] = {}
        self.enqueued = RollingCounter(clock=clock)
        self.done = RollingCounter(clock=clock)
        self.failed = RollingCounter(clock=clock)
        self._arrivals: dict[str, RollingCounter] = {}
        self._completions: dict[str, RollingCounter] = {}
        self.series = {name: TimeSeries() for name in SERIES_NAMES}
        self._utilization: deque[float] = deque(maxlen=30)
        self._depths: deque[tuple[float, int]] = deque(maxlen=31)
        self._queue_depths: dict[str, deque[tuple[float, int]]] = {}
        self._last_second = {"enqueued": 0.0, "done": 0.0, "failed": 0.0}
        self._last_tick: float | None = None
        self._last_busy = 0.0
        #: what -> (monotonic time it started failing, the latest error): writes the
        #: store is refusing now ("claims", "completions"); cleared on the next success.
        self.store_errors: dict[str, tuple[float, str]] = {}
        self.recorder: AttemptSink | None = None  #: the durable history's (engine.history)

    # -- recording (hot path) -----------------------------------------------------
    def record_store_error(self, what: str, exc: BaseException) -> None:
        """The store refused ``what`` (claims, completions): full, corrupted, locked."""
        since = self.store_errors.get(what, (self._clock(), ""))[0]
        self.store_errors[what] = (since, str(exc))

    def record_store_ok(self, what: str) -> None:
        if self.store_errors:
            self.store_errors.pop(what, None)

    def handler(self, name: str, executor: str) -> _HandlerMetrics:
        entry = self._handlers.get(name)
        if entry is None:
            entry = self._handlers[name] = _HandlerMetrics(executor, self._clock)
        return entry

    def record_enqueued(self, queue: str, n: int = 1) -> None:
        self.enqueued.add(n)
        counter = self._arrivals.get(queue)
        if counter is None:
            counter = self._arrivals[queue] = RollingCounter(horizon=120, clock=self._clock)
        counter.add(n)

    def record_start(self, handler: str, executor: str, wait: float, queue: str = "") -> None:
        entry = self.handler(handler, executor)
        entry.waits.add(max(0.0, wait), self._clock())
        entry.wait_buckets.add(max(0.0, wait))
        if self.recorder is not None and queue:
            self.recorder.started(handler, queue, max(0.0, wait))

    def record_attempt(
        self,
        handler: str,
        executor: str,
        queue: str,
        *,
        run_time: float,
        outcome: str,
        cpu: float | None = None,
        max_step: float | None = None,
        error: str | None = None,
    ) -> None:
        """One finished attempt. ``outcome``: succeeded, failed, retry or interrupted."""
        now = self._clock()
        m = self._handlers.get(handler) or self.handler(handler, executor)
        m.runs += 1
        m.run_total += run_time
        if m.run_min is None or run_time < m.run_min:
            m.run_min = run_time
        if m.run_max is None or run_time > m.run_max:
            m.run_max = run_time
        m.run_times.add(run_time, now)
        m.run_buckets.add(run_time)
        m.busy.add(run_time, now)
        m.attempts_recent.add(1, now)
        if cpu is not None:
            m.cpu_total += cpu
            m.cpu_runs += 1
            if run_time > 0:
                m.cpu_ratios.add(min(1.0, cpu / run_time), now)
        if max_step is not None and max_step >= 0.001:  # shorter steps block nothing
            m.steps.add(max_step, now)
        if outcome == "succeeded":
            m.successes += 1
            self.done.add(1, now)
        elif outcome in ("failed", "retry"):
            m.failures += 1
            m.failures_recent.add(1, now)
            self.failed.add(1, now)
            if outcome == "retry":
                m.retries += 1
            else:
                self.done.add(1, now)
            if error:
                m.errors.append((now, error))
        timed_out = bool(error and error.startswith("HardTimeout"))
        if timed_out:
            m.timeouts += 1
        if self.recorder is not None:
            self.recorder.finished(handler, queue, run_time, outcome, timed_out)
        if outcome in ("succeeded", "failed"):
            counter = self._completions.get(queue)
            if counter is None:
                counter = self._completions[queue] = RollingCounter(horizon=120, clock=self._clock)
            counter.add(1, now)

    # -- once a second ------------------------------------------------------------
    def tick(
        self, depth: int, busy_seconds: float, workers: int, queue_depths: Mapping[str, int]
    ) -> None:
        """Close one second: append to every series and to the trend windows.

        ``busy_seconds`` is the pool's running total of busy worker-seconds; the
        share of the pool busy since the last tick is exact, not a sample.
        """
        now = self._clock()
        elapsed = now - self._last_tick if self._last_tick is not None else None
        busy = (busy_seconds - self._last_busy) / elapsed if elapsed else 0.0
        self._last_tick, self._last_busy = now, busy_seconds
        for name, counter in (("enqueued", self.enqueued), ("done", self.done),
                              ("failed", self.failed)):  # fmt: skip
            self.series[name].append(counter.total - self._last_second[name])
            self._last_second[name] = counter.total
        self.series["depth"].append(depth)
        self.series["busy"].append(busy)
        self.series["workers"].append(workers)
        if elapsed:
            self._utilization.append(min(1.0, busy / workers) if workers else 0.0)
        self._depths.append((now, depth))
        for queue, n in queue_depths.items():
            self._queue_depths.setdefault(queue, deque(maxlen=31)).append((now, n))

    @property
    def utilization_window(self) -> int:
        """Seconds of pool-utilization history behind ``view().utilization``."""
        return len(self._utilization)

    # -- summaries (when someone looks) -------------------------------------------
    def handler_stats(self) -> dict[str, HandlerStats]:
        now = self._clock()
        since = now - RECENT
        busy = {name: m.busy.count(RECENT) for name, m in self._handlers.items()}
        total_busy = sum(busy.values())
        out = {}
        for name, m in self._handlers.items():
            runs = sorted(m.run_times.values(since)) or sorted(m.run_times.values())
            waits = sorted(m.waits.values(since)) or sorted(m.waits.values())
            ratios = m.cpu_ratios.values(since)
            steps = m.steps.values(since)
            errors = Counter(text for t, text in m.errors if t >= since)
            top = errors.most_common(1)
            out[name] = HandlerStats(
                name=name,
                executor=m.executor,
                runs=m.runs,
                successes=m.successes,
                failures=m.failures,
                retries=m.retries,
                timeouts=m.timeouts,
                run_mean=m.run_total / m.runs if m.runs else None,
                run_min=m.run_min,
                run_max=m.run_max,
                run_p50=percentile(runs, 0.50),
                run_p95=percentile(runs, 0.95),
                run_p99=percentile(runs, 0.99),
                wait_p50=percentile(waits, 0.50),
                wait_p95=percentile(waits, 0.95),
                cpu_per_run=m.cpu_total / m.cpu_runs if m.cpu_runs else None,
                cpu_ratio=sum(ratios) / len(ratios) if ratios else None,
                max_step=max(steps) if steps else None,
                impact=busy[name] / total_busy if total_busy > 0 else 0.0,
                attempts_last_minute=int(m.attempts_recent.count(RECENT)),
                failures_last_minute=int(m.failures_recent.count(RECENT)),
                top_error=top[0][0] if top else None,
                top_error_count=top[0][1] if top else 0,
                run_histogram=m.run_buckets.histogram(),
                wait_histogram=m.wait_buckets.histogram(),
            )
        return out

    def view(
        self,
        *,
        worker_count: int,
        busy: int,
        depth: int,
        queues: Iterable[tuple[str, int, bool, float | None]],
        store_latency_p99: float | None,
    ) -> MetricsView:
        """Summarise. ``queues``: (name, depth, paused, oldest age) for each queue."""
        handlers = self.handler_stats()
        queue_stats = {}
        for name, queue_depth, paused, oldest in queues:
            arrivals = self._arrivals.get(name)
            completions = self._completions.get(name)
            queue_stats[name] = QueueStats(
                name=name,
                depth=queue_depth,
                paused=paused,
                oldest_age=oldest,
                arrival_rate=arrivals.rate(30.0) if arrivals else 0.0,
                completion_rate=completions.rate(30.0) if completions else 0.0,
                depth_trend=_trend(self._queue_depths.get(name, ())),
            )
        recent_runs = [v for m in self._handlers.values() for v in m.run_times.values(
            self._clock() - RECENT)]  # fmt: skip
        return MetricsView(
            at=time.time(),
            worker_count=worker_count,
            busy_workers=busy,
            utilization=sum(self._utilization) / len(self._utilization)
            if self._utilization
            else (busy / worker_count if worker_count else 0.0),
            arrival_rate=self.enqueued.rate(30.0),
            done_rate=self.done.rate(30.0),
            depth=depth,
            depth_trend=_trend(self._depths),
            handlers=handlers,
            queues=queue_stats,
            series={name: s.values() for name, s in self.series.items()},
            store_latency_p99=store_latency_p99,
            mean_run=sum(recent_runs) / len(recent_runs) if recent_runs else None,
            arrival_recent=self.enqueued.rate(5.0),
        )


def _trend(points: Iterable[tuple[float, int]]) -> float:
    """Change per second between the oldest and newest point (0 with fewer than two)."""
    pts = list(points)
    if len(pts) < 2 or pts[-1][0] <= pts[0][0]:
        return 0.0
    return (pts[-1][1] - pts[0][1]) / (pts[-1][0] - pts[0][0])
