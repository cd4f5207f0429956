"""The consumer side of the two-process benches: an app for ``taskdeck run --headless``,
and the tally every consumer in ``bench/peers.py`` keeps::

    BENCH_STORE=… BENCH_EXPECT=20000 BENCH_OUT=/tmp/done.json \
        python -m console.cli run --headless --app bench.bench_app:app

``app`` builds an engine on ``BENCH_STORE`` with the default worker count (or
``BENCH_WORKERS``) and settings from ``TASKDECK_*`` variables (none set: the defaults),
and two handlers: ``noop(n)`` returns at once; ``timed(t0)`` notes how long after
``t0`` (``time.monotonic()`` in the producer: one clock for every process on the
machine) it started. ``noop(n=-1)`` is the ping a producer sends first: the consumer
then writes ``BENCH_OUT + ".ready"``. When ``BENCH_EXPECT`` tasks have run it writes
``BENCH_OUT``: ``{"t_done": …, "latencies_ms": […]}`` (the clock stops at the last
handler call).
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from engine import Engine, Settings

PING = -1


class Tally:
    """Counts handler calls in one consumer process (thread-safe: Huey runs threads)."""

    def __init__(self, expect: int, out: str | Path) -> None:
        self.expect = expect
        self.out = Path(out)
        self.count = 0
        self.latencies: list[float] = []
        self._lock = threading.Lock()

    def hit(self, n: int | None = None, t0: float | None = None) -> None:
        """One handler call: ``n=PING`` is the readiness ping; ``t0`` a timed task."""
        now = time.monotonic()
        if n == PING:
            self.out.with_name(self.out.name + ".ready").write_text("ready")
            return
        with self._lock:
            if t0 is not None:
                self.latencies.append((now - t0) * 1000)
            self.count += 1
            if self.count != self.expect:
                return
            report = {"t_done": now, "tasks": self.count, "latencies_ms": self.latencies}
        tmp = self.out.with_name(self.out.name + ".tmp")
        tmp.write_text(json.dumps(report))
        tmp.replace(self.out)  # the reader never sees half a file


def tally_from_env() -> Tally:
    return Tally(int(os.environ.get("BENCH_EXPECT", "0")), os.environ["BENCH_OUT"])


def app() -> Engine:
    """The Engine ``taskdeck run --headless --app bench.bench_app:app`` runs."""
    store, settings = os.environ["BENCH_STORE"], Settings.from_env()
    workers = os.environ.get("BENCH_WORKERS")  # unset: the Engine's default
    if workers:
        engine = Engine(store, int(workers), settings=settings)
    else:
        engine = Engine(store, settings=settings)
    tally = tally_from_env()

    @engine.task(name="noop")
    async def noop(n: int = 0) -> None:
        tally.hit(n=n)

    @engine.task(name="timed")
    async def timed(t0: float) -> None:
        tally.hit(t0=t0)

    return engine
