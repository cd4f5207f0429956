"""What a recording holds, as JSON: the dashboard's part of an :class:`EngineSnapshot`,
engine events, and the queue table's rows.

A recording keeps what the console *showed*, not the engine's whole state: the counts,
queues, workers and worker processes, findings, rates, resources and their series, the
throughput series, whether the autoscaler was on and everything was paused. Task rows
keep the columns of the queue table (no payloads, results or errors). :func:`snapshot_of` rebuilds a
snapshot the panels draw exactly as they drew the original; a missing or mistyped field
raises :class:`RecordError` (which the reader reports with its record number).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from engine import (
    AllPaused,
    ChildSample,
    EngineSnapshot,
    Event,
    EventKind,
    Finding,
    MetricsView,
    ProcessChild,
    QueueInfo,
    ResourceSample,
    Settings,
    TaskRecord,
    TaskState,
    WorkerInfo,
)

Json = dict[str, Any]
#: The columns of a task row a recording keeps (the queue table's).
ROW_FIELDS = (
    "id", "handler", "queue", "priority", "state", "attempts", "max_retries", "progress",
    "created_at", "started_at", "finished_at", "worker", "progress_message", "run_at",
    "waiting",
)  # fmt: skip


class RecordError(ValueError):
    """A record that does not say what a recording record must."""


# -- writing ------------------------------------------------------------------------
def snapshot_json(snap: EngineSnapshot) -> Json:
    """The dashboard's part of ``snap``."""
    metrics = snap.metrics
    return {
        "at": snap.at,
        "node": snap.node,
        "store": snap.store,
        "running": snap.running,
        "encrypted": snap.encrypted,
        "worker_count": snap.worker_count,
        "busy_workers": snap.busy_workers,
        "workers": [asdict(w) for w in snap.workers],
        "counts": {s.value: n for s, n in snap.counts.items()},
        "queues": [queue_json(q) for q in snap.queues.values()],
        "throughput": snap.throughput,
        "failures_per_minute": snap.failures_per_minute,
        "autoscale": snap.settings.autoscale,
        "resources": asdict(snap.resources) if snap.resources is not None else None,
        "findings": [finding_json(f) for f in snap.findings],
        "series": {k: list(v) for k, v in metrics.series.items()} if metrics else None,
        "resource_series": {k: list(v) for k, v in snap.resource_series.items()},
        "buffered": snap.buffered,
        "all_paused": asdict(snap.all_paused) if snap.all_paused is not None else None,
        "process_children": [asdict(c) for c in snap.process_children],
    }


def queue_json(q: QueueInfo) -> Json:
    counts = {s.value: n for s, n in q.counts.items()}
    return {"name": q.name, "depth": q.depth, "paused": q.paused, "counts": counts,
            "buffered": q.buffered}  # fmt: skip


def finding_json(f: Finding) -> Json:
    action = [f.action[0], dict(f.action[1])] if f.action is not None else None
    return {
        "severity": f.severity, "title": f.title, "evidence": f.evidence,
        "suggestion": f.suggestion, "action": action, "rule": f.rule, "node": f.node,
    }  # fmt: skip


def event_json(e: Event) -> Json:
    return {
        "kind": e.kind.value, "at": e.at, "task_id": e.task_id, "handler": e.handler,
        "queue": e.queue, "attempt": e.attempt, "message": e.message, "data": dict(e.data),
    }  # fmt: skip


def row_json(task: TaskRecord) -> list[Any]:
    return [getattr(task, name) for name in ROW_FIELDS]


# -- reading ------------------------------------------------------------------------
def snapshot_of(data: Json) -> EngineSnapshot:
    """The snapshot a :func:`snapshot_json` record describes."""
    try:
        return _snapshot(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise RecordError(f"not a snapshot ({type(exc).__name__}: {exc})") from None


def _snapshot(d: Json) -> EngineSnapshot:
    series = d["series"]
    at = float(d["at"])
    metrics = None if series is None else _metrics(at, d, series)
    resources = d["resources"]
    paused = d["all_paused"]
    return EngineSnapshot(
        at=at,
        node=str(d["node"]),
        store=str(d["store"]),
        running=bool(d["running"]),
        encrypted=bool(d["encrypted"]),
        worker_count=int(d["worker_count"]),
        busy_workers=int(d["busy_workers"]),
        workers=tuple(WorkerInfo(**w) for w in d["workers"]),
        counts=_counts(d["counts"]),
        queues={q["name"]: _queue(q) for q in d["queues"]},
        throughput=float(d["throughput"]),
        failures_per_minute=float(d["failures_per_minute"]),
        settings=Settings().replace(autoscale=bool(d["autoscale"])),
        resources=None if resources is None else _resources(resources),
        findings=tuple(_finding(f) for f in d["findings"]),
        metrics=metrics,
        resource_series={k: tuple(v) for k, v in d["resource_series"].items()},
        buffered=int(d["buffered"]),
        all_paused=None if paused is None else AllPaused(**paused),
        process_children=tuple(
            ProcessChild(**{**c, "handlers": tuple(c["handlers"])})
            for c in d.get("process_children", ())
        ),
    )


def _counts(data: Mapping[str, int]) -> dict[TaskState, int]:
    return {TaskState(state): int(n) for state, n in data.items()}


def _queue(q: Json) -> QueueInfo:
    return QueueInfo(q["name"], int(q["depth"]), bool(q["paused"]), _counts(q["counts"]),
                     int(q["buffered"]))  # fmt: skip


def _finding(f: Json) -> Finding:
    action = f["action"]
    return Finding(
        f["severity"], f["title"], f["evidence"], f["suggestion"],
        (str(action[0]), dict(action[1])) if action is not None else None,
        f["rule"], f["node"],
    )  # fmt: skip


def _resources(r: Json) -> ResourceSample:
    children = tuple(ChildSample(**c) for c in r["children"])
    return ResourceSample(**{**r, "cpu_per_core": tuple(r["cpu_per_core"]), "children": children})


def _metrics(at: float, d: Json, series: Mapping[str, Sequence[float]]) -> MetricsView:
    """A view carrying the series the throughput chart draws (the other numbers the
    dashboard shows come from the snapshot itself)."""
    return MetricsView(
        at=at, worker_count=int(d["worker_count"]), busy_workers=int(d["busy_workers"]),
        utilization=0.0, arrival_rate=0.0, done_rate=0.0, depth=0, depth_trend=0.0,
        handlers={}, queues={}, series={k: tuple(v) for k, v in series.items()},
        store_latency_p99=None, mean_run=None,
    )  # fmt: skip


def event_of(data: Json) -> Event:
    try:
        return Event(
            EventKind(data["kind"]), float(data["at"]), data["task_id"], data["handler"],
            data["queue"], data["attempt"], str(data["message"]), dict(data["data"]),
        )  # fmt: skip
    except (KeyError, TypeError, ValueError) as exc:
        raise RecordError(f"not an event ({type(exc).__name__}: {exc})") from None


def row_of(values: Sequence[Any]) -> TaskRecord:
    try:
        row = dict(zip(ROW_FIELDS, values, strict=True))
        row["state"] = TaskState(row["state"])
        return TaskRecord(payload=None, result=None, error=None, **row)
    except (TypeError, ValueError) as exc:
        raise RecordError(f"not a task row ({type(exc).__name__}: {exc})") from None
