"""The cluster as an attached console sees it: the nodes on the store (from their
heartbeats), their totals, their findings merged with the console's, the handlers
that queued tasks name and no alive node runs, and a per-second history of the
cluster's done/s and failed/s for the throughput chart. Plain Python: the panels read
it, the app fills it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from engine import (
    SEVERITY_ORDER,
    STORE_WIDE_RULES,
    Finding,
    NodeInfo,
    node_findings,
    unserved_findings,
)

#: Seconds of cluster throughput kept for the chart (as much as an engine keeps).
HISTORY = 600


@dataclass(frozen=True)
class ClusterTotals:
    """Sums over the alive nodes (a dead node's last numbers are stale)."""

    nodes: int
    alive: int
    workers: int
    busy: int
    throughput: float
    failures_per_minute: float
    autoscaling: int  # alive nodes with the autoscaler on


class Cluster:
    """The last list of nodes read from the store, and the cluster's rate history."""

    def __init__(self) -> None:
        self.nodes: tuple[NodeInfo, ...] = ()
        self.loaded = False  # the nodes were read at least once
        self.at = 0.0  # when they were read (wall clock)
        self.done: deque[float] = deque(maxlen=HISTORY)
        self.failed: deque[float] = deque(maxlen=HISTORY)
        self._second: int | None = None
        #: handler -> queued tasks naming it that no alive node runs (Engine.unserved)
        self.unserved: dict[str, int] = {}

    def update(self, nodes: list[NodeInfo], now: float) -> None:
        """Take a fresh read of the node rows; one chart column per wall-clock second
        (a second read within the same second replaces that second's column)."""
        self.nodes = tuple(nodes)
        self.loaded = True
        self.at = now
        totals = self.totals()
        done, failed = totals.throughput, totals.failures_per_minute / 60.0
        second = int(now)
        if self._second == second and self.done:
            self.done[-1], self.failed[-1] = done, failed
            return
        if self._second is not None:  # seconds with no read repeat the last value
            for _ in range(min(HISTORY, second - self._second - 1)):
                self.done.append(self.done[-1] if self.done else 0.0)
                self.failed.append(self.failed[-1] if self.failed else 0.0)
        self._second = second
        self.done.append(done)
        self.failed.append(failed)

    def findings(self, own: tuple[Finding, ...]) -> tuple[Finding, ...]:
        """The console's own findings (what the store shows) with those in the alive
        nodes' heartbeats (what each node sees of itself) and the handlers no node
        serves, worst first. A store-wide finding several nodes report alike is shown
        once."""
        merged = [*own, *unserved_findings(self.unserved)]
        seen = {(f.rule, f.title) for f in own if f.rule in STORE_WIDE_RULES}
        for node in self.alive:
            for finding in node_findings(node):
                if finding.rule in STORE_WIDE_RULES:
                    if (finding.rule, finding.title) in seen:
                        continue
                    seen.add((finding.rule, finding.title))
                merged.append(finding)
        merged.sort(key=lambda f: SEVERITY_ORDER[f.severity])
        return tuple(merged)

    def served(self) -> frozenset[str] | None:
        """The handlers the alive nodes run; None when unknown (no node is alive, or
        one did not say: an older version)."""
        alive = self.alive
        if not alive or any(n.handlers is None for n in alive):
            return None
        return frozenset(name for n in alive for name in n.handlers or ())

    def find(self, node_id: str) -> NodeInfo | None:
        return next((n for n in self.nodes if n.id == node_id), None)

    @property
    def alive(self) -> tuple[NodeInfo, ...]:
        return tuple(n for n in self.nodes if n.state == "alive")

    def totals(self) -> ClusterTotals:
        alive = self.alive
        return ClusterTotals(
            nodes=len(self.nodes),
            alive=len(alive),
            workers=sum(n.workers for n in alive),
            busy=sum(n.busy for n in alive),
            throughput=sum(n.throughput for n in alive),
            failures_per_minute=sum(
                float(n.snapshot.get("failures_per_minute", 0.0)) for n in alive
            ),
            autoscaling=sum(1 for n in alive if n.snapshot.get("autoscale")),
        )

    def describe(self) -> str:
        """``3 nodes`` / ``2 of 3 nodes alive`` / ``no nodes yet`` for the header."""
        if not self.loaded:
            return "looking for nodes…"
        t = self.totals()
        if not t.nodes:
            return "no nodes yet"
        plural = "s" if t.nodes != 1 else ""
        if t.alive == t.nodes:
            return f"{t.nodes} node{plural}"
        return f"{t.alive} of {t.nodes} node{plural} alive"
