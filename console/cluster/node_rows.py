"""A node as a row of text cells: the Nodes panel of the attached console and
``taskdeck nodes`` show the same columns. Plain Python (no Textual)."""

from __future__ import annotations

from console.format import Column, ago, rate, size
from engine import NodeInfo

COLUMNS = (
    Column("node", "NODE", 0),
    Column("host", "HOST", 12),
    Column("pid", "PID", 7, right=True),
    Column("state", "STATE", 7),
    Column("workers", "WORKERS", 7, right=True),
    Column("rate", "DONE/S", 6, right=True),
    Column("cpu", "CPU", 5, right=True),
    Column("mem", "MEM", 8, right=True),
    Column("seen", "SEEN", 6, right=True),
)


def workers_cell(busy: int, workers: int) -> str:
    """``3/8``; ``6/6+1`` while a shrunk node's extra worker finishes its task (never an
    impossible ``7/6``)."""
    return f"{busy}/{workers}" if busy <= workers else f"{workers}/{workers}+{busy - workers}"


def cell_texts(node: NodeInfo, now: float) -> dict[str, str]:
    snap = node.snapshot
    cpu, rss = snap.get("cpu"), snap.get("rss")
    return {
        "node": node.id,
        "host": node.host,
        "pid": str(node.pid),
        "state": node.state,
        "workers": workers_cell(node.busy, node.workers),
        "rate": rate(node.throughput),
        "cpu": f"{float(cpu):.0f}%" if cpu is not None else "–",
        "mem": size(float(rss)) if rss is not None else "–",
        "seen": ago(now - node.last_seen),
    }
