"""``taskdeck screenshot``: the real console, headless, on the demo, saved as SVG and PNG.

It runs the demo on a temporary store for a few seconds (with a burst, so the queue
has a backlog, and one image that fails for good, so there is a traceback to show),
then saves the dashboard at 160×50 and 100×30, the enqueue form with a payload
error, settings, a failed task's detail, the failed tasks, and help, each as SVG and,
when a renderer is installed (see ``console.svg_to_png``), as PNG.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from pathlib import Path

from console.app import ConsoleApp
from console.demo import register_demo
from console.screens.enqueue import PayloadArea
from console.screens.task_detail import TaskDetailScreen
from console.svg_to_png import to_png
from engine import Engine, TaskState

log = logging.getLogger(__name__)

SHOTS = (
    "dashboard-160x50",
    "dashboard-100x30",
    "enqueue-form",
    "settings",
    "task-detail",
    "failed-tasks",
    "help",
)


BAD_PAYLOAD = """{
  "image_id": "img-0007",
  "url": "https://photos.example/img-0007.raw"
  "size": 3
}"""


def write_all(out: Path, shots: dict[str, str]) -> list[Path]:
    """Write each SVG into ``out`` and a PNG beside it when a renderer is installed."""
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, svg in shots.items():
        path = out / f"{name}.svg"
        path.write_text(svg, encoding="utf-8")
        written.append(path)
    pngs = [p for p in (to_png(svg) for svg in written) if p is not None]
    if written and not pngs:
        log.warning("no SVG renderer found (chromium, rsvg-convert or cairosvg): wrote SVG only")
    return written + pngs


async def take_screenshots(out: Path, seconds: float = 8.0) -> list[Path]:
    """Run the demo in a headless console and save every screen; returns the files."""
    shots: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(Path(tmp) / "demo.db", workers=8)
        register_demo(engine)
        app = ConsoleApp(engine, demo=True, demo_rate=4.0)

        def save(name: str) -> None:
            shots[name] = app.export_screenshot(title=f"Taskdeck · {name}")

        async with app.run_test(size=(160, 50)) as pilot:
            while not engine.running:
                await pilot.pause(0.05)
            await engine.enqueue(
                "images.download",
                {
                    "image_id": "img-vacation-0042",
                    "url": "https://photos.example/img-vacation-0042.heic",
                },
                priority="critical",
            )
            await engine.enqueue_many(
                [
                    (
                        "images.download",
                        {
                            "image_id": f"img-burst-{i:03d}",
                            "url": f"https://photos.example/img-burst-{i:03d}.raw",
                        },
                        {"priority": (i * 7) % 10},
                    )
                    for i in range(160)
                ]
            )
            await asyncio.sleep(seconds)
            await pilot.pause(0.6)
            save("dashboard-160x50")
            await pilot.resize_terminal(100, 30)
            await pilot.pause(1.2)
            save("dashboard-100x30")
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

            failed = await engine.tasks(state=TaskState.FAILED, limit=1)
            if failed:
                await app.push_screen(TaskDetailScreen(engine, failed[0].id))
                await pilot.pause(0.6)
                save("task-detail")
                await pilot.press("escape")
            else:
                log.warning("no failed task yet: skipped the task-detail screenshot")

            await open_and_save("f", "failed-tasks", 0.8)
            await open_and_save("question_mark", "help", 0.3)
            if app.demo is not None:
                await app.demo.stop()
        with contextlib.suppress(Exception):
            await engine.stop(grace=0)
    return await asyncio.to_thread(write_all, out, shots)
