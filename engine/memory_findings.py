"""Memory findings about worker processes: a child whose memory grows steadily across
tasks (a leak, named by the handlers it ran), and the engine with its children over
``memory_limit`` (naming the top consumers). Pure functions of what the process
runner and the resource sampler saw; :mod:`engine.bottleneck` lists them as rules.
"""

from __future__ import annotations

from collections.abc import Iterable

from engine.resources import ResourceSample
from engine.snapshot import Finding, ProcessChild

#: Consumers named in the engine memory finding.
TOP_CONSUMERS = 3


def _mb(n: float) -> str:
    return f"{n / 2**20:,.1f} MB" if n < 10 * 2**20 else f"{n / 2**20:,.0f} MB"


def leaking_children(children: Iterable[ProcessChild], threshold: int) -> Iterable[Finding]:
    """One finding for the children growing faster than ``threshold`` bytes per task."""
    growing = [c for c in children if c.growth is not None and c.growth > threshold]
    if not growing:
        return
    handlers = list(dict.fromkeys(h for c in growing for h in c.handlers))
    worst = max(growing, key=lambda c: c.growth or 0.0)
    replaced = sum(1 for c in growing if not c.alive)
    evidence = (
        f"{len(growing)} worker process{'es' if len(growing) > 1 else ''} grew by up to "
        f"{_mb(worst.growth or 0.0)} per task (threshold {_mb(threshold)}); "
        f"pid {worst.pid} ran {worst.tasks} tasks"
        + (f", now {_mb(worst.rss)}" if worst.rss is not None else "")
        + (f"; {replaced} already replaced" if replaced else "")
    )
    yield Finding(
        severity="warning",
        title=f"Memory leak in {', '.join(handlers)}",
        evidence=evidence,
        suggestion=(
            "Look for what the handler keeps between tasks (module-level lists, caches, "
            "unclosed resources); meanwhile set max_tasks_per_child or "
            "max_memory_per_child so worker processes are replaced before memory runs out."
        ),
        rule="leak",
    )


def engine_memory(
    resources: ResourceSample | None, children: Iterable[ProcessChild], limit: int
) -> Iterable[Finding]:
    """A finding when this engine and its worker processes hold more than ``limit``."""
    if resources is None or limit <= 0:
        return
    total = resources.rss + resources.children_rss
    if total <= limit:
        return
    ran = {c.pid: c.handlers for c in children if c.alive}
    consumers = [(resources.rss, "the engine")]
    for child in resources.children:
        names = ", ".join(ran.get(child.pid, ())) or "idle"
        consumers.append((child.rss, f"pid {child.pid} ({names})"))
    consumers.sort(reverse=True)
    top = "; ".join(f"{who} {_mb(rss)}" for rss, who in consumers[:TOP_CONSUMERS])
    yield Finding(
        severity="warning",
        title="Engine memory over its limit",
        evidence=(
            f"the engine and {len(resources.children)} worker processes hold {_mb(total)} "
            f"(memory_limit {_mb(limit)}); top: {top}"
        ),
        suggestion=(
            "Set max_memory_per_child to replace worker processes that grow, or run "
            "fewer tasks at once."
        ),
        rule="engine_memory",
    )
