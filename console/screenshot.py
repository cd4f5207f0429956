"""``taskdeck screenshot``: the real console, headless, on the demo, saved as SVG and PNG.

It runs the demo on a temporary store for a few seconds (with a burst, so the queue
has a backlog, and one image that fails for good, so there is a traceback to show),
then saves the dashboard at 160×50 and 100×30, the enqueue form with a payload
error, settings, a failed task's detail, the detail of a step in the middle of an
image's chain, the live stack of a running task (``K`` in its detail), the
schedules (after running one now and pausing another) at 160×50 and 100×30, the
failed tasks, the failure groups (F), help, the alerts (the demo's rules, one of
them acknowledged), the audit trail (a few actions with notes, one refused), the
trends (over a day of history seeded before the demo starts), the bulk operations
(one done with skip reasons, one in progress) and a failed task's edit form; then
three demo engines (nodes) on another store with a console attached to them
(``console --attach``), after ``]`` on one node, at 160×50 and 100×30. Each is
saved as SVG and, when a renderer is installed (see ``console.svg_to_png``), as PNG.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from textual.pilot import Pilot

from console.app import ConsoleApp
from console.demo import DemoPipeline, image_chain, register_demo
from console.history_seed import seed_history
from console.panels.nodes import NodesPanel
from console.screens.enqueue import PayloadArea
from console.screens.task_detail import TaskDetailScreen
from console.screens.task_stack import TaskStackScreen
from console.svg_to_png import to_png
from engine import Engine, TaskState

log = logging.getLogger(__name__)

#: PNGs rendered at once (each by its own headless browser: a few seconds apiece).
PNG_AT_ONCE = 4
SHOTS = (
    "dashboard-160x50",
    "dashboard-100x30",
    "dashboard-80x24",
    "enqueue-form",
    "settings",
    "settings-flow-control",
    "task-detail",
    "task-detail-chain",
    "task-stack",
    "schedules-160x50",
    "schedules-100x30",
    "failed-tasks",
    "failures",
    "help",
    "alerts",
    "audit",
    "trends",
    "operations",
    "edit-form",
    "attached-160x50",
    "attached-100x30",
)
#: The nodes of the attached screenshots and their worker counts.
NODES = {"node-a": 3, "node-b": 4, "node-c": 4}


#: The demo's alert rules (no channels: nobody is notified).
DEMO_ALERTS = {
    "evaluate_every": "0.5s",
    "bottlenecks": "warning",
    "rules": {
        "images-backlog": "queue:images backlog > 20 for 2s severity critical repeat 30m",
        "downloads-waiting": "queue:downloads oldest_wait > 3s for 1s",
        "stalled": "throughput == 0 for 5m while backlog > 0 severity critical",
    },
    "slo": {"downloads": "p95 wait < 30s"},
}

BAD_PAYLOAD = """{
  "image_id": "img-0007",
  "url": "https://photos.example/img-0007.raw"
  "size": 3
}"""


async def middle_step(engine: Engine) -> str | None:
    """A step of an image's chain, best one in the middle (filter or upload) that is
    running, so there are steps done before it and waiting after it."""
    steps = [
        task
        for state in (TaskState.RUNNING, TaskState.QUEUED)
        for task in await engine.tasks(state=state, limit=200)
        if task.workflow_id is not None
    ]
    if not steps:
        return None
    best = max(steps, key=lambda t: (t.step in (2, 3), t.state == TaskState.RUNNING, t.step or 0))
    return best.id


def write_all(out: Path, shots: dict[str, str]) -> list[Path]:
    """Write each SVG into ``out`` and a PNG beside it when a renderer is installed."""
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, svg in shots.items():
        path = out / f"{name}.svg"
        path.write_text(svg, encoding="utf-8")
        written.append(path)
    with ThreadPoolExecutor(PNG_AT_ONCE) as pool:  # one renderer process each, side by side
        pngs = [p for p in pool.map(to_png, written) if p is not None]
    if written and not pngs:
        log.warning("no SVG renderer found (chromium, rsvg-convert or cairosvg): wrote SVG only")
    return written + pngs


async def take_screenshots(out: Path, seconds: float = 8.0) -> list[Path]:
    """Run the demo in a headless console and save every screen; returns the files."""
    shots: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        await seed_history(Path(tmp) / "demo.db", time.time())
        engine = Engine(Path(tmp) / "demo.db", workers=8)
        register_demo(engine)
        engine.alerts.configure(DEMO_ALERTS)
        app = ConsoleApp(engine, demo=True, demo_rate=4.0)

        def save(name: str) -> None:
            shots[name] = app.export_screenshot(title=f"Taskdeck · {name}")

        async with app.run_test(size=(160, 50), notifications=True) as pilot:
            while not engine.running:
                await pilot.pause(0.05)
            vacation = "img-vacation-0042"
            await engine.enqueue_workflow(
                image_chain(vacation, f"https://photos.example/{vacation}.heic", priority=9)
            )
            for i in range(160):
                image = f"img-burst-{i:03d}"
                await engine.enqueue_workflow(
                    image_chain(image, f"https://photos.example/{image}.raw", (i * 7) % 10)
                )
            await asyncio.sleep(seconds)
            await pilot.pause(0.6)
            save("dashboard-160x50")
            await pilot.resize_terminal(100, 30)
            await pilot.pause(1.2)
            save("dashboard-100x30")
            await pilot.resize_terminal(80, 24)  # the compact layout: frozen, three marked
            await pilot.pause(1.2)
            await pilot.press("z", "home", "down", "space", "down", "space", "space")
            await pilot.pause(0.3)
            app.clear_notifications()
            save("dashboard-80x24")
            await pilot.press("escape", "z")
            await pilot.resize_terminal(160, 50)
            await pilot.pause(0.6)

            await pilot.press("e")
            await pilot.pause(0.3)
            area = app.screen.query_one(PayloadArea)
            area.load_text(BAD_PAYLOAD)
            await pilot.pause(0.3)
            save("enqueue-form")
            await pilot.press("escape")

            async def open_and_save(key: str, name: str, settle: float) -> None:
                await pilot.press(key)
                await pilot.pause(settle)
                save(name)
                await pilot.press("escape")

            await open_and_save("s", "settings", 0.4)

            await engine.update_settings(
                queue_rate_limits={"uploads": "120/m"},
                queue_concurrency={"reports": 1},
                queue_weights={"downloads": 3, "images": 2},
            )
            await pilot.press("s")
            await pilot.pause(0.4)
            app.screen.query_one("#settings-list").scroll_end(animate=False)
            await pilot.pause(0.3)
            save("settings-flow-control")
            await pilot.press("escape")

            failed = await engine.tasks(state=TaskState.FAILED, limit=1)
            if failed:
                await app.push_screen(TaskDetailScreen(engine, failed[0].id))
                await pilot.pause(0.6)
                save("task-detail")
                await pilot.press("escape")
            else:
                log.warning("no failed task yet: skipped the task-detail screenshot")

            step = await middle_step(engine)
            if step is not None:
                await app.push_screen(TaskDetailScreen(engine, step))
                await pilot.pause(0.6)
                save("task-detail-chain")
                await pilot.press("escape")
            else:
                log.warning("no chain half done yet: skipped the task-detail-chain screenshot")

            await stack_shot(app, engine, pilot, save)

            await pilot.press("t")
            await pilot.pause(0.5)
            await pilot.press("p", "down", "n")  # pause the nightly one, run the other now
            await pilot.pause(1.0)
            save("schedules-160x50")
            app.clear_notifications()  # shown above; here they would cover the line below
            await pilot.resize_terminal(100, 30)
            await pilot.pause(0.8)
            save("schedules-100x30")
            await pilot.resize_terminal(160, 50)
            await pilot.press("escape")
            await pilot.pause(0.3)

            await open_and_save("f", "failed-tasks", 0.8)
            await open_and_save("F", "failures", 1.0)
            await open_and_save("question_mark", "help", 0.3)
            await pilot.press("A")
            await pilot.pause(1.2)
            await pilot.press("a")  # acknowledge the first (firing) one
            await pilot.pause(1.2)
            app.clear_notifications()
            save("alerts")
            await pilot.press("escape")
            await pilot.pause(0.3)
            await audit_shot(app, engine, pilot, save)
            await open_and_save("T", "trends", 1.0)
            await operations_shot(app, engine, pilot, save)
            if app.demo is not None:
                await app.demo.stop()
        with contextlib.suppress(Exception):
            await engine.stop(grace=0)
        shots.update(await attached_shots(Path(tmp) / "cluster.db", seconds))
    return await asyncio.to_thread(write_all, out, shots)


async def stack_shot(
    app: ConsoleApp, engine: Engine, pilot: Pilot[Any], save: Callable[[str], None]
) -> None:
    """The live stack (K in task detail) of a running resize (a thread handler), or of
    another running task; demo tasks are short, so a few are tried."""
    for _ in range(10):
        running = await engine.tasks(state=TaskState.RUNNING, limit=50)
        running.sort(key=lambda t: t.handler != "images.resize")
        if running:
            await app.push_screen(TaskDetailScreen(engine, running[0].id))
            await pilot.pause(0.1)
            await pilot.press("K")
            await pilot.pause(0.6)
            taken = isinstance(app.screen, TaskStackScreen) and app.screen.trace is not None
            if taken:
                save("task-stack")
            await pilot.press("escape", "escape")
            await pilot.pause(0.2)
            if taken:
                return
        await pilot.pause(0.2)
    log.warning("no running task held still long enough: skipped the task-stack screenshot")


async def attached_shots(store: Path, seconds: float) -> dict[str, str]:
    """Three demo engines on ``store`` (in this process) under load, and a console
    attached to them; ``]`` on the second node, so its toasts show the routing."""
    shots: dict[str, str] = {}
    nodes = []
    for name, workers in NODES.items():
        node = Engine(store, workers=workers, name=name)
        register_demo(node)
        nodes.append(node)
    console = Engine(store, workers=0, strict_handlers=False, name="console")
    app = ConsoleApp(console, attach=True)
    load = DemoPipeline(nodes[0], rate=6.0, seed=7)
    try:
        for node in nodes:
            await node.start()
        for i in range(60):
            image = f"img-batch-{i:03d}"
            await nodes[0].enqueue_workflow(
                image_chain(image, f"https://photos.example/{image}.raw", (i * 3) % 10)
            )
        load.start()
        async with app.run_test(size=(160, 50), notifications=True) as pilot:
            await asyncio.sleep(max(3.0, min(seconds, 8.0)))
            panel = app.query_one(NodesPanel)
            panel.focus()
            await pilot.press("down", "right_square_bracket")
            for worker in [w for w in app.workers if w.group == "workers"]:
                await worker.wait()  # until the node's outcome is reported
            await pilot.pause(1.2)  # and its next heartbeat is on screen
            shots["attached-160x50"] = app.export_screenshot(title="Taskdeck · attached-160x50")
            app.clear_notifications()
            await pilot.resize_terminal(100, 30)
            await pilot.pause(1.2)
            shots["attached-100x30"] = app.export_screenshot(title="Taskdeck · attached-100x30")
    finally:
        await load.stop()
        for engine in (console, *nodes):
            with contextlib.suppress(Exception):
                await engine.stop(grace=0)
    return shots


async def audit_shot(
    app: ConsoleApp, engine: Engine, pilot: Pilot[Any], save: Callable[[str], None]
) -> None:
    """The Audit screen after a few operator actions with notes (and one refusal)."""
    failed = await engine.tasks(state=TaskState.FAILED, limit=1)
    with engine.audit.note("INC-4211: retry after the storage fix"):
        if failed:
            await engine.retry(failed[0].id)
        await engine.update_settings(queue_rate_limits={"uploads": "200/m"})
    with engine.audit.note("backfill running: hold uploads"):
        await engine.pause("uploads")
        await engine.resume("uploads")
    with contextlib.suppress(LookupError, ValueError):
        await engine.cancel("999999")  # refused: shown in red
    await pilot.press("U")
    await pilot.pause(1.0)
    await pilot.press("down")
    await pilot.pause(0.3)
    app.clear_notifications()
    save("audit")
    await pilot.press("escape")


async def operations_shot(
    app: ConsoleApp, engine: Engine, pilot: Pilot[Any], save: Callable[[str], None]
) -> None:
    """The Operations screen: a finished bulk cancel with its skip reasons, and a
    reprioritize of 20,000 backfill tasks caught half way; then a failed task's edit
    form."""
    await engine.pause("backfill")
    notify = [("images.notify", {"image_id": f"img-old-{i:05d}", "urls": []},
               {"queue": "backfill", "priority": i % 10}) for i in range(20_000)]  # fmt: skip
    ids = await engine.enqueue_many(notify)
    await engine.cancel(ids[0])
    with engine.audit.note("INC-4212: stale notifications"):
        done = await engine.ops.start("cancel", ids=ids[:40])
        await engine.ops.wait(done.id)
        engine.ops.batch_size = 250
        running = await engine.ops.start(
            "reprioritize", queue="backfill", state="queued", priority="high"
        )
    await pilot.press("O")
    while (await engine.ops.get(running.id)).done < 9_000:
        await pilot.pause(0.1)
    await pilot.pause(1.2)  # the screen's next refresh
    app.clear_notifications()
    save("operations")
    await engine.ops.abort(running.id)
    engine.ops.batch_size = 1000
    await pilot.press("escape")
    failed = await engine.tasks(state=TaskState.FAILED, limit=1)
    if not failed:
        log.warning("no failed task: skipped the edit-form screenshot")
        return
    await app.push_screen(TaskDetailScreen(engine, failed[0].id))
    await pilot.pause(0.6)
    await pilot.press("E")
    await pilot.pause(0.4)
    save("edit-form")
    await pilot.press("escape")
    await pilot.press("escape")
