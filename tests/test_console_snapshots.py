"""Snapshot tests: the dashboard and the enqueue form, as pictures, at 160×50, 100×30 and
80×24 (the compact layout).

The data is fixed: tasks are enqueued with a frozen clock, the live numbers (workers,
CPU, rates, findings) come from a made-up snapshot, and the event bridge and the
refresh timer are stopped so nothing moves between runs. Update the pictures after a
deliberate UI change with ``pytest tests/test_console_snapshots.py --snapshot-update``
and look at the report before committing.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from console.app import ConsoleApp
from console.demo import register_demo
from console.panels.events import EventsPanel
from console.screens.enqueue import PayloadArea
from engine import Engine, EngineSnapshot, Event, EventKind
from engine.metrics import MetricsView
from engine.resources import ResourceSample
from engine.snapshot import Finding, WorkerInfo

from .console_helpers import settle, started

#: 2026-11-22 10:00:00 UTC: when the tasks were created.
CREATED = 1795341600.0
#: Ninety seconds later: "now" on screen.
NOW = CREATED + 90.0

Snapshot = Callable[..., bool]


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Event times print in local time; make it the same everywhere."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def wave(n: int, base: float, swing: float, period: int = 12) -> tuple[float, ...]:
    """A repeatable up-and-down series (no randomness)."""
    return tuple(
        base + swing * ((i % period) - period / 2) ** 2 / (period / 2) ** 2 for i in range(n)
    )


def fixed_snapshot(real: EngineSnapshot) -> EngineSnapshot:
    """``real`` (its counts and queues come from the store) with made-up live numbers."""
    workers = (
        WorkerInfo("w1", "busy", "3", "images.download", "downloads", "async", 1, 1.4, 0.62,
                   "fetched 2.1 MB of 3.4 MB"),
        WorkerInfo("w2", "busy", "7", "images.filter", "images", "process", 2, 4.8, 0.3,
                   "sharpen pass 1/3"),
        WorkerInfo("w3", "busy", "12", "images.resize", "images", "thread", 1, 0.2),
        *(WorkerInfo(f"w{i}", "idle") for i in range(4, 9)),
    )  # fmt: skip
    done = wave(60, 9.0, 6.0)
    failed = tuple(1.0 if i % 17 == 5 else 0.0 for i in range(60))
    metrics = MetricsView(
        at=NOW, worker_count=8, busy_workers=3, utilization=0.41, arrival_rate=11.5,
        done_rate=10.9, depth=real.queued, depth_trend=0.4, handlers={}, queues={},
        series={"done": done, "failed": failed}, store_latency_p99=0.004, mean_run=0.35,
    )  # fmt: skip
    resources = ResourceSample(
        at=NOW, process_cpu=37.5, system_cpu=44.0, cpu_per_core=(51.0, 37.0),
        rss=96 * 2**20, memory_percent=1.4, loop_lag=0.003, open_fds=31, threads=14,
    )  # fmt: skip
    series = {
        "process_cpu": wave(60, 25.0, 20.0),
        "system_cpu": wave(60, 35.0, 15.0, 9),
        "rss": wave(60, 90 * 2**20, 8 * 2**20, 20),
        "memory_percent": wave(60, 1.3, 0.2, 20),
        "loop_lag": wave(60, 0.002, 0.004, 7),
        "open_fds": wave(60, 28.0, 4.0, 15),
    }
    findings = (
        Finding(
            "warning",
            "images.filter takes 71% of worker time",
            "mean 4.6 s per run on the process executor; 24 runs in the last minute",
            "give it its own queue or more process workers",
            None,
            "slow_handler",
        ),
        Finding(
            "info",
            "queue downloads is growing",
            "depth 12 → 19 in 30 s (+0.4/s) with 3 of 8 workers busy",
            "raise workers to 10",
            ("set_workers", {"n": 10}),
            "backlog",
        ),
    )
    return dataclasses.replace(
        real, at=NOW, node="node-1", store="taskdeck.db", running=True, worker_count=8,
        busy_workers=3, workers=workers, throughput=10.9, failures_per_minute=2.0,
        resources=resources, resource_series=series, findings=findings, metrics=metrics,
    )  # fmt: skip


EVENTS = (
    Event(EventKind.ENGINE_STARTED, CREATED, message="8 workers on taskdeck.db"),
    Event(EventKind.ENQUEUED, CREATED + 1, "1", "images.download", "downloads"),
    Event(EventKind.STARTED, CREATED + 2, "3", "images.download", "downloads", 1),
    Event(EventKind.RETRY_SCHEDULED, CREATED + 3, "5", "images.upload", "uploads", 1,
          "ConnectionError: upload refused (HTTP 503); retry in 2.0 s"),
    Event(EventKind.SUCCEEDED, CREATED + 4, "2", "images.notify", "notifications", 1),
    Event(EventKind.WORKERS_CHANGED, CREATED + 5, message="workers 6 → 8 (operator)"),
)  # fmt: skip


def demo_engine(path: Path) -> Engine:
    engine = Engine(path, workers=0, name="node-1", clock=lambda: CREATED)
    register_demo(engine)
    return engine


async def fill(engine: Engine) -> None:
    await engine.enqueue_many(
        [
            (
                ("images.download", {"image_id": f"img-{i:04d}", "url": f"https://x/{i}.raw"})
                if i % 3
                else ("images.resize", {"image_id": f"img-{i:04d}", "bytes": 1000 + i})
            )
            + ({"priority": (i * 7) % 10},)
            for i in range(1, 41)
        ]
    )
    await engine.enqueue(
        "images.notify", {"image_id": "img-0001", "urls": ["https://x/1.jpg"]}, delay=300
    )


def frozen(app: ConsoleApp) -> Callable[[Pilot[Any]], Awaitable[None]]:
    """A ``run_before`` that fills the store and then stops everything that moves."""

    async def run_before(pilot: Pilot[Any]) -> None:
        await started(pilot)
        engine = app.engine
        await fill(engine)
        for worker in app.workers:
            if worker.group == "events":
                worker.cancel()
        assert app._timer is not None
        app._timer.stop()
        real = engine.snapshot()
        engine.snapshot = lambda: fixed_snapshot(real)  # type: ignore[method-assign]
        app.refresh_tick()
        await settle(pilot)
        log = app.query_one(EventsPanel)
        log.clear()
        log.write_events(EVENTS)
        await settle(pilot)

    return run_before


@pytest.mark.parametrize("size", [(160, 50), (100, 30), (80, 24)])
def test_dashboard(snap_compare: Snapshot, db_path: Path, size: tuple[int, int]) -> None:
    app = ConsoleApp(demo_engine(db_path), now=lambda: NOW)
    assert snap_compare(app, terminal_size=size, run_before=frozen(app))


@pytest.mark.parametrize("size", [(160, 50), (100, 30), (80, 24)])
def test_enqueue_form_with_a_payload_error(
    snap_compare: Snapshot, db_path: Path, size: tuple[int, int]
) -> None:
    app = ConsoleApp(demo_engine(db_path), now=lambda: NOW)
    dashboard = frozen(app)

    async def run_before(pilot: Pilot[Any]) -> None:
        await dashboard(pilot)
        await pilot.press("e")
        await settle(pilot)
        app.screen.query_one(PayloadArea).load_text('{\n  "image_id": "img-0007"\n  "bytes": 3\n}')
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", [(100, 30), (80, 24)])
def test_marks_and_freeze(snap_compare: Snapshot, db_path: Path, size: tuple[int, int]) -> None:
    """Three tasks marked (● in the first column, the count in the title and the header),
    the table frozen."""
    app = ConsoleApp(demo_engine(db_path), now=lambda: NOW)
    dashboard = frozen(app)

    async def run_before(pilot: Pilot[Any]) -> None:
        await dashboard(pilot)
        await pilot.press("down", "space", "space", "down", "space", "z")
        await settle(pilot)
        app.refresh_tick()
        app.clear_notifications()  # the toasts say what the title says
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=run_before)
