"""Bottleneck findings: what is holding the engine back, the numbers that show it,
and what to do — as a pure function of a metrics view, resources and settings.

Each rule is a small function returning findings; every threshold is a setting.
Where the remedy is an engine command (``set_workers``, ``pause``, ``resume``,
``update_settings``), the finding carries it as ``action`` so a console can apply
it with one key.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from engine.limits import parse_rate
from engine.memory_findings import engine_memory, leaking_children
from engine.metrics import MetricsView
from engine.resources import ResourceSample
from engine.settings import Settings
from engine.snapshot import SEVERITY_ORDER, Finding, ProcessChild
from engine.stuck import StuckTask, stuck_findings

MIN_WINDOW = 5  # seconds of history before pool-level rules speak
_GONE = "was deleted or replaced while the engine ran"  # see engine.store.sqlite.watch


@dataclass(frozen=True)
class Inputs:
    """What the rules look at."""

    view: MetricsView
    resources: ResourceSample | None
    loop_lag: float  # worst event-loop lag in the last minute, seconds
    settings: Settings
    window: int  # seconds of utilization history in the view
    handler_queues: dict[str, str]  # handler -> the queue it mostly runs in
    #: (what, seconds failing, latest error) for each kind of write the store refuses
    store_errors: tuple[tuple[str, float, str], ...] = ()
    #: handler -> queued tasks (of those looked at) that no handler here can run
    unclaimable: dict[str, int] = field(default_factory=dict)
    #: queue -> tasks running in it (on every process of the store)
    running: dict[str, int] = field(default_factory=dict)
    #: handlers that periodic schedules run (on any process of the store)
    periodic: frozenset[str] = frozenset()
    #: tasks running here on one line of their handler for too long (engine.stuck)
    stuck: tuple[StuckTask, ...] = ()
    #: this engine's worker processes, and recently replaced ones that grew
    children: tuple[ProcessChild, ...] = ()


def _n(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.3g}"


def _s(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def workers_needed(arrival_rate: float, mean_run: float, target_pct: float) -> int:
    """Little's law: busy workers = arrivals/s × seconds each; divided by the target
    utilization so the pool keeps some slack."""
    return max(1, math.ceil(arrival_rate * mean_run / (target_pct / 100.0)))


# -- pool-level rules ------------------------------------------------------------------


def saturated(i: Inputs) -> Iterable[Finding]:
    v, s = i.view, i.settings
    if (
        i.window < MIN_WINDOW
        or v.worker_count == 0
        or v.utilization * 100 < s.saturation_threshold
        or not v.backlog_growing
    ):
        return
    mean_run = v.mean_run or 0.0
    arrivals = max(v.arrival_rate, v.done_rate + v.depth_trend)
    needed = max(workers_needed(arrivals, mean_run, s.target_utilization), v.worker_count + 1)
    capped = min(needed, s.max_workers)
    net = v.done_rate - v.arrival_rate
    drain = (
        f"at the current rate it drains in {_s(v.depth / net)}"
        if net > 0
        else f"at the current rate it never drains (it grows {_n(v.depth_trend)}/s)"
    )
    cap_note = f", capped at max_workers {s.max_workers}" if capped < needed else ""
    yield Finding(
        severity="critical" if net <= 0 else "warning",
        title="Workers saturated and the backlog is growing",
        evidence=(
            f"busy {v.busy_workers}/{v.worker_count} ({v.utilization:.0%} over {i.window} s); "
            f"backlog {v.depth:,}, growing {_n(v.depth_trend)}/s; arrivals {_n(v.arrival_rate)}/s, "
            f"done {_n(v.done_rate)}/s; mean run {_s(mean_run)}"
        ),
        suggestion=(
            f"Add workers: {capped} (Little's law: {_n(arrivals)}/s × {_s(mean_run)} ÷ "
            f"{s.target_utilization:g} % target = {needed}{cap_note}); {drain}."
        ),
        action=("set_workers", {"n": capped}) if capped > v.worker_count else None,
        rule="saturated",
    )


def idle_capacity(i: Inputs) -> Iterable[Finding]:
    v, s = i.view, i.settings
    floor = max(1, s.min_workers)
    if i.window < MIN_WINDOW or v.worker_count <= floor or v.depth > 0:
        return
    if v.utilization * 100 >= s.idle_threshold:
        return
    needed = max(floor, workers_needed(v.arrival_rate, v.mean_run or 0.0, s.target_utilization))
    if needed >= v.worker_count:
        return
    yield Finding(
        severity="info",
        title="Idle capacity",
        evidence=(
            f"{v.utilization * v.worker_count:.1f} of {v.worker_count} workers busy on average "
            f"({v.utilization:.0%} over {i.window} s); arrivals {_n(v.arrival_rate)}/s × mean "
            f"run {_s(v.mean_run)}; nothing waiting"
        ),
        suggestion=f"{needed} workers would do at {s.target_utilization:g} % utilization.",
        action=("set_workers", {"n": needed}),
        rule="idle",
    )


def memory_pressure(i: Inputs) -> Iterable[Finding]:
    r, s, v = i.resources, i.settings, i.view
    if r is None:
        return
    over_system = r.memory_percent >= s.memory_threshold
    over_rss = s.rss_limit > 0 and r.rss >= s.rss_limit
    if not (over_system or over_rss):
        return
    parts = [f"system memory {r.memory_percent:.0f} % (threshold {s.memory_threshold:g} %)"]
    mb = r.rss / 2**20
    parts.append(
        f"this process {mb:,.0f} MB"
        + (f" (limit {s.rss_limit / 2**20:,.0f} MB)" if s.rss_limit else "")
    )
    if r.children:
        parts.append(f"{len(r.children)} worker processes {r.children_rss / 2**20:,.0f} MB")
    fewer = max(s.min_workers, v.worker_count // 2)
    yield Finding(
        severity="critical",
        title="Memory pressure",
        evidence="; ".join(parts),
        suggestion=(
            f"Fewer concurrent tasks hold less memory: {fewer} workers"
            if fewer < v.worker_count
            else "Reduce what each task keeps in memory, or give the machine more"
        )
        + ".",
        action=("set_workers", {"n": fewer}) if fewer < v.worker_count else None,
        rule="memory",
    )


def leak(i: Inputs) -> Iterable[Finding]:
    return leaking_children(i.children, i.settings.leak_threshold)


def engine_memory_limit(i: Inputs) -> Iterable[Finding]:
    return engine_memory(i.resources, i.children, i.settings.memory_limit)


def store_latency(i: Inputs) -> Iterable[Finding]:
    p99, s = i.view.store_latency_p99, i.settings
    if p99 is None or p99 < s.store_latency_threshold:
        return
    extra = " durability=full adds an fsync to every commit;" if s.durability == "full" else ""
    yield Finding(
        severity="warning",
        title="The store is slow",
        evidence=(
            f"store transactions take {_s(p99)} at p99 (threshold {_s(s.store_latency_threshold)})"
        ),
        suggestion=(
            "Look for another process holding long write transactions, a slow or busy "
            f"disk, or a very large -wal file;{extra} batch enqueues with enqueue_many."
        ),
        rule="store_latency",
    )


def paused_backlog(i: Inputs) -> Iterable[Finding]:
    for q in i.view.queues.values():
        if not q.paused or q.depth == 0:
            continue
        old = q.oldest_age or 0.0
        yield Finding(
            severity="warning" if old > 60 else "info",
            title=f"Queue {q.name} is paused with a backlog",
            evidence=f"{q.depth:,} tasks waiting; the oldest for {_s(old)}",
            suggestion=f"Resume queue {q.name} when whatever it waits for is ready.",
            action=("resume", {"queue": q.name}),
            rule="paused_backlog",
        )


def rate_limited(i: Inputs) -> Iterable[Finding]:
    """A queue whose backlog is held back by its rate limit, and how long it will take."""
    limits = i.settings.queue_rate_limits
    for q in i.view.queues.values():
        if q.paused or q.name not in limits:
            continue
        rate = parse_rate(limits[q.name])
        if q.depth <= rate.burst:
            continue
        drain = q.depth / rate.per_second
        yield Finding(
            severity="warning" if drain > 600 else "info",
            title=f"Queue {q.name} is rate-limited: {rate}",
            evidence=f"{rate}, backlog {q.depth:,}, {_s(drain)} to drain",
            suggestion=(
                f"Raise queue_rate_limits for {q.name} in settings if the service it protects "
                "allows more; otherwise the backlog drains at this pace."
            ),
            rule="rate_limited",
        )


def concurrency_limited(i: Inputs) -> Iterable[Finding]:
    """A queue with a backlog that runs at its concurrency limit."""
    limits = i.settings.queue_concurrency
    for q in i.view.queues.values():
        limit = limits.get(q.name)
        if q.paused or limit is None or q.depth == 0 or i.running.get(q.name, 0) < limit:
            continue
        yield Finding(
            severity="info",
            title=f"Queue {q.name} runs at its concurrency limit ({limit})",
            evidence=f"{i.running.get(q.name, 0)} running, backlog {q.depth:,}",
            suggestion=f"Raise queue_concurrency for {q.name} in settings to run more at once.",
            rule="concurrency_limited",
        )


def store_refusing(i: Inputs) -> Iterable[Finding]:
    gone = [error for _, _, error in i.store_errors if _GONE in error]
    if gone:
        yield Finding(
            severity="critical",
            title="Store file deleted or replaced",
            evidence=gone[0],
            suggestion=(
                "Stop the engine and start it on a store (restore the file, or a new one). "
                "Until then every write is refused; nothing acknowledged was lost."
            ),
            rule="store_error",
        )
    for what, seconds, error in i.store_errors:
        text = error.lower()
        if _GONE in error:
            continue
        if "full" in text:
            suggestion = (
                "Free disk space (or raise the store's size limit). Claiming is paused and "
                "finished tasks are kept in memory and saved as soon as the store takes writes."
            )
        elif "corrupt" in text or "malformed" in text:
            suggestion = (
                "Stop the engine and restore the file from a backup (or `sqlite3 FILE "
                ".recover`); Taskdeck never overwrites it."
            )
        elif "locked" in text:
            suggestion = "Another process holds a long write transaction on the store: end it."
        else:
            suggestion = "Check the store's disk and permissions; writes are retried with backoff."
        yield Finding(
            severity="critical",
            title=f"The store refuses {what}",
            evidence=f"failing for {_s(seconds)}: {error}",
            suggestion=suggestion,
            rule="store_error",
        )


def unclaimable(i: Inputs) -> Iterable[Finding]:
    if not i.unclaimable:
        return
    names = sorted(i.unclaimable, key=lambda h: -i.unclaimable[h])
    shown = ", ".join(f"{h} ({i.unclaimable[h]:,})" for h in names[:5])
    more = f" and {len(names) - 5} more" if len(names) > 5 else ""
    yield Finding(
        severity="warning",
        title="Queued tasks name handlers no worker here has",
        evidence=f"queued tasks by handler: {shown}{more}; they stay queued",
        suggestion=(
            "Register these handlers in a worker engine (@engine.task), or run a node that "
            "has them; handlers are never imported by name."
        ),
        rule="unclaimable",
    )


# -- handler-level rules ---------------------------------------------------------------


def loop_blocked(i: Inputs) -> Iterable[Finding]:
    s = i.settings
    if i.loop_lag < s.loop_lag_threshold:
        return
    culprits = sorted(
        (
            h
            for h in i.view.handlers.values()
            if h.executor == "async" and (h.max_step or 0) >= s.loop_lag_threshold
        ),
        key=lambda h: -(h.max_step or 0),
    )
    for h in culprits:
        yield Finding(
            severity="critical" if (h.max_step or 0) >= 1.0 else "warning",
            title=f"{h.name} blocks the event loop",
            evidence=(
                f"event-loop lag up to {_s(i.loop_lag)} in the last minute; {h.name} held the "
                f"loop for {_s(h.max_step)} in one step (threshold {_s(s.loop_lag_threshold)})"
            ),
            suggestion=(
                f"Move {h.name} off the event loop: executor='thread' for blocking I/O or "
                "executor='process' for CPU-heavy work (or await instead of blocking)."
            ),
            rule="loop_blocked",
        )


def cpu_bound(i: Inputs) -> Iterable[Finding]:
    s = i.settings
    for h in i.view.handlers.values():
        if h.executor != "thread" or h.cpu_ratio is None or h.attempts_last_minute < 3:
            continue
        if h.cpu_ratio * 100 < s.cpu_bound_threshold:
            continue
        yield Finding(
            severity="warning" if h.impact >= 0.2 else "info",
            title=f"{h.name} is CPU-bound on a thread",
            evidence=(
                f"CPU time is {h.cpu_ratio:.0%} of its run time (threshold "
                f"{s.cpu_bound_threshold:g} %); mean run {_s(h.run_mean)}; "
                f"{h.impact:.0%} of worker time"
            ),
            suggestion=(
                f"Threads share one core for Python code; run {h.name} with "
                "executor='process' to use the other cores."
            ),
            rule="cpu_bound",
        )


def dominant(i: Inputs) -> Iterable[Finding]:
    v, s = i.view, i.settings
    if len(v.handlers) < 2 or v.utilization < 0.5:
        return
    for h in v.handlers.values():
        if h.impact * 100 < s.dominance_threshold:
            continue
        yield Finding(
            severity="info",
            title=f"{h.name} takes most of the workers' time",
            evidence=(
                f"{h.impact:.0%} of all worker busy time in the last minute (threshold "
                f"{s.dominance_threshold:g} %); mean run {_s(h.run_mean)}, p95 {_s(h.run_p95)}"
            ),
            suggestion=(
                f"Speeding up {h.name} helps most; or give it its own queue so it can be "
                "paused or scaled apart from the rest."
            ),
            rule="dominant",
        )


def retry_storm(i: Inputs) -> Iterable[Finding]:
    s = i.settings
    for h in i.view.handlers.values():
        attempts, failures = h.attempts_last_minute, h.failures_last_minute
        if failures < s.retry_storm_min_failures or attempts == 0:
            continue
        share = failures / attempts
        if share * 100 < s.retry_storm_threshold:
            continue
        queue = i.handler_queues.get(h.name)
        top = f"; top error ({h.top_error_count}×): {h.top_error}" if h.top_error else ""
        yield Finding(
            severity="critical" if share >= 0.5 else "warning",
            title=f"Retry storm in {h.name}",
            evidence=(
                f"{failures} of {attempts} attempts failed in the last minute ({share:.0%}; "
                f"threshold {s.retry_storm_threshold:g} %){top}"
            ),
            suggestion=(
                f"Check what {h.name} depends on"
                + (f"; pausing queue {queue} stops the retries piling up" if queue else "")
                + "."
            ),
            action=("pause", {"queue": queue}) if queue else None,
            rule="retry_storm",
        )


def slow_waits(i: Inputs) -> Iterable[Finding]:
    """Tasks that wait much longer than they run. A periodic handler is left out: its
    few runs are enqueued when due, and one that waited (behind a start, or behind the
    other handlers' backlog, which the saturation rule reports) is not a backlog of its
    own; its tiny run time turns any wait into a huge ratio."""
    s = i.settings
    for h in i.view.handlers.values():
        if h.name in i.periodic:
            continue
        wait, run = h.wait_p95, h.run_p95
        if wait is None or run is None or wait < 1.0:
            continue
        if wait < s.wait_ratio_threshold * max(run, 0.001):
            continue
        queue = i.handler_queues.get(h.name)
        if h.name in s.handler_rate_limits or queue in s.queue_rate_limits:
            continue  # waiting is what a rate limit does; rate_limited reports the queue
        if queue in s.queue_concurrency:
            continue
        yield Finding(
            severity="warning",
            title=f"{h.name} tasks wait much longer than they run",
            evidence=(
                f"p95 wait {_s(wait)} vs p95 run {_s(run)} ({wait / max(run, 0.001):,.0f}×; "
                f"threshold {s.wait_ratio_threshold:g}×)"
            ),
            suggestion=(
                f"Raise {h.name}'s priority or give it its own queue and workers; if every "
                "worker is busy, add workers."
            ),
            rule="slow_waits",
        )


def stuck(i: Inputs) -> Iterable[Finding]:
    return stuck_findings(i.stuck, i.settings.stuck_factor)


RULES: tuple[Callable[[Inputs], Iterable[Finding]], ...] = (
    store_refusing,
    saturated,
    memory_pressure,
    engine_memory_limit,
    leak,
    loop_blocked,
    retry_storm,
    store_latency,
    paused_backlog,
    unclaimable,
    slow_waits,
    stuck,
    cpu_bound,
    dominant,
    idle_capacity,
    rate_limited,
    concurrency_limited,
)


#: Rules that read only the store (counts, pauses, limits): every node on a store, and
#: a console attached to it, finds the same thing.
STORE_WIDE_RULES = frozenset({"paused_backlog", "rate_limited", "concurrency_limited"})


def find_bottlenecks(inputs: Inputs) -> tuple[Finding, ...]:
    """Every rule's findings, worst first (a stable order within a severity)."""
    found = [f for rule in RULES for f in rule(inputs)]
    found.sort(key=lambda f: SEVERITY_ORDER[f.severity])
    return tuple(found)
