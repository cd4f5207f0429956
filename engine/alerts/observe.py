"""The measures alert rules read, gathered from what the engine already computes: its
snapshot (store counts, the metrics view, resources, bottleneck findings), the
cluster's node rows and the paused queues' times. A pure function. Everything paused
(``snap.all_paused``) counts as every queue paused since then.

Counts (backlog, oldest wait, paused) are the whole store's. Rates and percentiles
come from this node's metrics, except that throughput and busy workers add up every
alive node's heartbeat when there are node rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from engine.alerts.rules import Observation
from engine.metrics import HandlerStats
from engine.model import NodeInfo, TaskState
from engine.snapshot import EngineSnapshot


def observe(
    snap: EngineSnapshot,
    nodes: Sequence[NodeInfo],
    paused_at: Mapping[str, float | None],
    handler_queues: Mapping[str, str],
    now: float,
) -> Observation:
    """``paused_at``: paused queue -> when it was paused; ``handler_queues``: handler ->
    its queue (for per-queue percentiles)."""
    view = snap.metrics
    handlers = dict(view.handlers) if view is not None else {}
    queue_stats = dict(view.queues) if view is not None else {}
    alive = [n for n in nodes if n.state == "alive"]
    paused_for = {q: now - at for q, at in paused_at.items() if at is not None}
    everything = now - snap.all_paused.at if snap.all_paused is not None else 0.0
    values: dict[tuple[str, str], dict[str, float | None]] = {}
    oldest = [q.oldest_age for q in queue_stats.values() if q.oldest_age is not None]
    attempts = sum(h.attempts_last_minute for h in handlers.values())
    failures = sum(h.failures_last_minute for h in handlers.values())
    values[("store", "")] = {
        "backlog": float(snap.queued),
        "oldest_wait": max(oldest) if oldest else 0.0,
        "wait_p95": _worst(h.wait_p95 for h in handlers.values()),
        "run_p95": _worst(h.run_p95 for h in handlers.values()),
        "failure_rate": failures / attempts if attempts else None,
        "throughput": sum(n.throughput for n in alive) if alive else snap.throughput,
        "busy_workers": float(sum(n.busy for n in alive) if alive else snap.busy_workers),
        "rss": float(snap.resources.rss) if snap.resources is not None else None,
        "loop_lag": snap.resources.loop_lag if snap.resources is not None else None,
        "dead_nodes": float(sum(1 for n in nodes if n.state == "dead")),
        "paused_for": max([everything, *paused_for.values()]),
    }
    for name, info in snap.queues.items():
        stats = queue_stats.get(name)
        mine = [h for h in handlers.values() if handler_queues.get(h.name) == name]
        values[("queue", name)] = {
            "backlog": float(info.counts.get(TaskState.QUEUED, 0)),
            "oldest_wait": stats.oldest_age if stats and stats.oldest_age is not None else 0.0,
            "wait_p95": _worst(h.wait_p95 for h in mine),
            "run_p95": _worst(h.run_p95 for h in mine),
            "throughput": stats.completion_rate if stats else 0.0,
            "paused_for": max(everything, paused_for.get(name, 0.0)),
        }
    for name, h in handlers.items():
        values[("handler", name)] = _handler(h)
    findings = tuple((f.severity, f.rule, f.title) for f in snap.findings)
    return Observation(now, values, findings)


def _handler(h: HandlerStats) -> dict[str, float | None]:
    attempts = h.attempts_last_minute
    return {
        "wait_p95": h.wait_p95,
        "run_p95": h.run_p95,
        "failure_rate": h.failures_last_minute / attempts if attempts else None,
        "throughput": (attempts - h.failures_last_minute) / 60.0,
    }


def _worst(values: Iterable[float | None]) -> float | None:
    found = [v for v in values if v is not None]
    return max(found) if found else None
