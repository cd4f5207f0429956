"""``GET /metrics``: Prometheus text from ``engine.snapshot()``, the node rows and the
alerts, built with the official ``prometheus-client``.

A custom collector turns one :class:`Scrape` (read on the engine loop: a snapshot,
which does no I/O, the small node table and the firing-alert count) into metric
families; each server has its own :class:`CollectorRegistry` (no global registry, no
global state), with the library's process collector beside it. Names follow the
Prometheus conventions: base units (seconds, bytes), ``_total`` counters, labels
``queue``, ``handler``, ``node``, ``state``, ``severity``.

Handler counters and histograms are the scraped process's own attempts (scrape every
``run --headless --http`` node); task counts, queues, nodes, findings and alerts are
the store's, the same from any process.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from engine import SEVERITY_ORDER, EngineSnapshot, NodeInfo, TaskState

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: (name, help, attribute of HandlerStats) of the per-handler counters.
HANDLER_COUNTERS = (
    ("runs", "Attempts finished (any outcome)", "runs"),
    ("successes", "Attempts that succeeded", "successes"),
    ("failures", "Attempts that failed (retried or final)", "failures"),
    ("retries", "Failed attempts that were retried", "retries"),
    ("timeouts", "Attempts stopped by their handler's timeout", "timeouts"),
)


@dataclass(frozen=True)
class Scrape:
    """What one scrape reads from the engine (on its loop)."""

    snapshot: EngineSnapshot
    nodes: Sequence[NodeInfo] | None  # None: the store did not answer
    alerts_firing: int | None


class EngineCollector(Collector):
    """Metric families from the latest :class:`Scrape` (set just before rendering)."""

    def __init__(self) -> None:
        self.scrape: Scrape | None = None

    def collect(self) -> Iterator[Metric]:
        if self.scrape is None:
            return
        yield from tasks_and_queues(self.scrape.snapshot)
        yield from handlers(self.scrape.snapshot)
        yield from workers(self.scrape.snapshot, self.scrape.nodes)
        yield from health(self.scrape)


def tasks_and_queues(snap: EngineSnapshot) -> Iterable[Metric]:
    tasks = GaugeMetricFamily("taskdeck_tasks", "Tasks in the store by state", labels=["state"])
    for state in TaskState:
        tasks.add_metric([state.value], snap.counts.get(state, 0))
    depth = GaugeMetricFamily(
        "taskdeck_queue_depth", "Tasks waiting in the queue (queued)", labels=["queue"]
    )
    paused = GaugeMetricFamily(
        "taskdeck_queue_paused", "1 if the queue is paused", labels=["queue"]
    )
    oldest = GaugeMetricFamily(
        "taskdeck_queue_oldest_wait_seconds",
        "How long the oldest queued task of the queue has waited",
        labels=["queue"],
    )
    ages = snap.metrics.queues if snap.metrics is not None else {}
    for name, queue in snap.queues.items():
        depth.add_metric([name], queue.depth)
        paused.add_metric([name], 1 if queue.paused else 0)
        age = ages[name].oldest_age if name in ages else None
        if age is not None:
            oldest.add_metric([name], age)
    throughput = GaugeMetricFamily(
        "taskdeck_throughput_tasks_per_second",
        "Tasks this process finished per second, over the last 10 s",
        value=snap.throughput,
    )
    return (tasks, depth, paused, oldest, throughput)


def handlers(snap: EngineSnapshot) -> Iterable[Metric]:
    stats = snap.metrics.handlers if snap.metrics is not None else {}
    for suffix, text, attribute in HANDLER_COUNTERS:
        family = CounterMetricFamily(
            f"taskdeck_handler_{suffix}", f"{text}, in this process", labels=["handler"]
        )
        for name, s in stats.items():
            family.add_metric([name], getattr(s, attribute))
        yield family
    for what, text in (("run", "Run time of each attempt"), ("wait", "Queue wait before start")):
        histograms = HistogramMetricFamily(
            f"taskdeck_handler_{what}_seconds", f"{text}, in this process", labels=["handler"]
        )
        for name, s in stats.items():
            histogram = getattr(s, f"{what}_histogram")
            if histogram is None:
                continue
            buckets = [
                (f"{b:g}", c) for b, c in zip(histogram.bounds, histogram.cumulative, strict=True)
            ]
            buckets.append(("+Inf", histogram.count))
            histograms.add_metric([name], buckets, histogram.sum)
        yield histograms


def workers(snap: EngineSnapshot, nodes: Sequence[NodeInfo] | None) -> Iterable[Metric]:
    total = GaugeMetricFamily("taskdeck_workers", "Worker slots of each live node", labels=["node"])
    busy = GaugeMetricFamily(
        "taskdeck_workers_busy", "Busy workers of each live node", labels=["node"]
    )
    rate = GaugeMetricFamily(
        "taskdeck_node_throughput_tasks_per_second",
        "Tasks each live node finished per second (its last heartbeat)",
        labels=["node"],
    )
    seen = set()
    for node in nodes or ():
        if node.state != "alive":
            continue
        seen.add(node.id)
        total.add_metric([node.id], node.workers)
        busy.add_metric([node.id], node.busy)
        rate.add_metric([node.id], node.throughput)
    if snap.node not in seen and snap.worker_count:  # before its first heartbeat
        total.add_metric([snap.node], snap.worker_count)
        busy.add_metric([snap.node], snap.busy_workers)
        rate.add_metric([snap.node], snap.throughput)
    return (total, busy, rate)


def health(scrape: Scrape) -> Iterable[Metric]:
    snap = scrape.snapshot
    findings = GaugeMetricFamily(
        "taskdeck_findings", "Bottleneck findings now, by severity", labels=["severity"]
    )
    for severity in SEVERITY_ORDER:
        findings.add_metric([severity], sum(1 for f in snap.findings if f.severity == severity))
    yield findings
    if scrape.alerts_firing is not None:
        yield GaugeMetricFamily(
            "taskdeck_alerts_firing", "Alerts firing now", value=scrape.alerts_firing
        )
    if scrape.nodes is not None:
        yield GaugeMetricFamily(
            "taskdeck_nodes_alive",
            "Engine processes alive on the store",
            value=sum(1 for n in scrape.nodes if n.state == "alive"),
        )
    sample = snap.resources
    if sample is not None:
        yield GaugeMetricFamily(
            "taskdeck_process_cpu_ratio",
            "CPU of this process as a share of one core (1 = a whole core)",
            value=sample.process_cpu / 100.0,
        )
        yield GaugeMetricFamily(
            "taskdeck_process_resident_memory_bytes",
            "Resident memory of this process",
            value=sample.rss,
        )
        yield GaugeMetricFamily(
            "taskdeck_event_loop_lag_seconds",
            "Worst delay of the engine's event loop over the last second",
            value=sample.loop_lag,
        )


class MetricsPage:
    """A registry of its own with the engine collector and the process collector."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.collector = EngineCollector()
        self.registry.register(self.collector)
        ProcessCollector(registry=self.registry)

    def render(self, scrape: Scrape) -> bytes:
        """The text of one scrape (synchronous: no other scrape interleaves)."""
        self.collector.scrape = scrape
        try:
            return generate_latest(self.registry)
        finally:
            self.collector.scrape = None
