"""``taskdeck run --headless``: the engine as a service, with a status line.

SIGINT, SIGTERM or SIGHUP (unless ignored, as under nohup) stops gracefully:
running tasks get ``shutdown_grace`` to finish; the rest go back to the queue without
using an attempt. A second signal stops at once; leases then expire and the next start
recovers the tasks.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from dataclasses import asdict
from functools import partial
from typing import TextIO

from console.demo import DemoPipeline
from console.format import busy_of
from console.http import HttpServer
from console.log_format import JsonFormatter
from console.status_out import StatusOut
from console.stop_signals import StopSignals, exit_at_once
from engine import Engine, EngineSnapshot, TaskState, wait_event


def status_line(snap: EngineSnapshot) -> str:
    c = snap.counts
    paused = f" · paused {','.join(sorted(snap.paused_queues))}" if snap.paused_queues else ""
    if snap.all_paused is not None:
        paused += " · ALL PAUSED" + (f" ({snap.all_paused.note})" if snap.all_paused.note else "")
    return (
        f"{time.strftime('%H:%M:%S')} · workers {busy_of(snap.busy_workers, snap.worker_count)}"
        f" · queued {c[TaskState.QUEUED]:,} · scheduled {c[TaskState.SCHEDULED]:,}"
        f" · running {c[TaskState.RUNNING]:,} · succeeded {c[TaskState.SUCCEEDED]:,}"
        f" · failed {c[TaskState.FAILED]:,} · cancelled {c[TaskState.CANCELLED]:,}"
        f" · {snap.throughput:.1f} done/s · {snap.failures_per_minute:.0f} failed/min{paused}"
    )


def status_json(snap: EngineSnapshot) -> str:
    return json.dumps(
        {
            "at": round(snap.at, 3),
            "node": snap.node,
            "store": snap.store,
            "workers": snap.worker_count,
            "busy": snap.busy_workers,
            "buffered": snap.buffered,
            "all_paused": None if snap.all_paused is None else asdict(snap.all_paused),
            "counts": {state.value: n for state, n in snap.counts.items()},
            "queues": {
                q.name: {"depth": q.depth, "paused": q.paused} for q in snap.queues.values()
            },
            "throughput": round(snap.throughput, 2),
            "failures_per_minute": snap.failures_per_minute,
            "stats": dict(snap.stats),
        }
    )


async def run_headless(
    engine: Engine,
    *,
    workers: int | None = None,
    json_lines: bool = False,
    interval: float = 2.0,
    demo: bool = False,
    demo_rate: float = 3.0,
    out: TextIO = sys.stdout,
    log_json: bool = False,
    http: HttpServer | None = None,
) -> int:
    """Run until SIGINT/SIGTERM; returns the process exit code. ``log_json``: the
    notices on stderr (started, stopping, stopped) are JSON log lines too. ``http``:
    serve it (metrics, health, the JSON API) from the start (/ready: 503 until it
    runs); its writes are recorded as the API's."""
    say = partial(notice, node=engine.node if log_json else None)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def graceful(name: str) -> None:
        say(f"{name}: stopping gracefully (send it again to stop at once)")
        stop.set()

    def now() -> None:
        say("stopping now; running tasks will be recovered when their leases expire")
        exit_at_once()

    signals = StopSignals(graceful, now)
    signals.install(loop)
    pipeline = DemoPipeline(engine, rate=demo_rate) if demo else None
    status = StatusOut(out, json_lines)  # a reader that falls behind never blocks the loop
    if http is not None:
        await http.start()
        engine.audit.act_as("api")
    try:
        if workers is not None:
            await engine.set_workers(workers)
        await engine.start()
        say(
            f"taskdeck {engine.node}: {engine.worker_count} workers on {engine.store_url}"
            f"{' (encrypted)' if engine.encrypted else ''}; Ctrl-C to stop"
        )
        if http is not None:
            say(f"taskdeck {engine.node}: {http.describe()}")
        if pipeline is not None:
            pipeline.start()
        while not stop.is_set():
            snap = engine.snapshot()
            status.write(status_json(snap) if json_lines else status_line(snap))
            await wait_event(stop, interval)
    finally:
        if http is not None:
            http.stopping = True
        if pipeline is not None:
            await pipeline.stop()
        report = await engine.stop()
        if http is not None:
            await asyncio.to_thread(http.stop)
        signals.remove(loop)
        await asyncio.to_thread(status.close)
    say(f"stopped; {report.describe()}")
    return 0


def notice(text: str, node: str | None = None) -> None:
    """A line on stderr about the service itself: text, or (``node`` given: JSON log
    lines were asked for) a JSON log line from that node."""
    if node is not None:
        record = logging.LogRecord("taskdeck", logging.INFO, __file__, 0, text, None, None)
        text = JsonFormatter(node).format(record)
    print(text, file=sys.stderr, flush=True)
