"""The console at scale and its own CPU cost; prints a JSON summary.

    python bench/console_bench.py            # full run (about four minutes)
    python bench/console_bench.py --quick    # 100,000 tasks and short CPU windows

1. Fills a fresh store with 1,000,000 queued tasks (``enqueue_many``, two queues, all
   ten priorities) and opens the real console on it (Textual's headless pilot, 160×50):
   - ``refresh_ms``: one queue-panel refresh: the snapshot handed to the panel, the
     window of rows read from the store, and the visible lines drawn (target < 50 ms);
   - ``priority_key_ms``: from pressing ``+``/``-`` on a task the cursor was moved to,
     to that task showing its new priority under the cursor. The new priority moves it
     ~100,000 rows away; the cursor follows (target < 100 ms).
2. Runs ``taskdeck console`` in a pseudo-terminal and ``taskdeck run --headless`` on the
   same kind of store, each for a while, and reports the process CPU (% of one core,
   children included). The console's own cost is the difference (targets: ≤ 2 % with
   nothing changing, ≤ 15 % under the demo load).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import os
import pty
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from textual import events  # noqa: E402

from console.app import ConsoleApp  # noqa: E402
from console.demo import register_demo  # noqa: E402
from console.panels.task_table import TaskTable  # noqa: E402
from engine import Engine  # noqa: E402


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median": round(statistics.median(ordered), 2),
        "p95": round(ordered[int(0.95 * (len(ordered) - 1))], 2),
        "max": round(ordered[-1], 2),
        "n": len(ordered),
    }


# -- 1. a million queued tasks ---------------------------------------------------------


async def fill(path: Path, count: int) -> float:
    engine = Engine(path, workers=0)
    register_demo(engine)
    t0 = time.perf_counter()
    async with engine:
        batch = 10_000
        for start in range(0, count, batch):
            await engine.enqueue_many(
                [
                    (
                        ("images.resize", {"image_id": f"img-{i}", "bytes": i})
                        if i % 4
                        else ("images.download", {"image_id": f"img-{i}", "url": f"u{i}"})
                    )
                    + ({"priority": i % 10},)
                    for i in range(start, min(count, start + batch))
                ]
            )
    return time.perf_counter() - t0


async def fetch_done(app: ConsoleApp) -> None:
    for worker in list(app.workers):
        if worker.group == "queue-fetch" and not worker.is_finished:
            await worker.wait()


async def at_scale(path: Path, count: int, trials: int) -> dict[str, Any]:
    engine = Engine(path, workers=0)
    register_demo(engine)
    app = ConsoleApp(engine, refresh_hz=0.01)  # the bench drives every refresh itself
    result: dict[str, Any] = {}
    async with app.run_test(size=(160, 50)) as pilot:
        while not engine.running:
            await pilot.pause(0.05)
        await pilot.pause(0.5)
        table = app.query_one("#queue TaskTable", TaskTable)
        panel = app.queue
        assert table.total == count, (table.total, count)

        refresh: list[float] = []
        for _ in range(trials):
            t0 = time.perf_counter()
            panel.update_from(engine.snapshot())
            await fetch_done(app)
            for y in range(table.size.height):
                table.render_line(y)
            refresh.append((time.perf_counter() - t0) * 1000)
        result["refresh_ms"] = summary(refresh)

        keys: list[float] = []
        for trial in range(trials):
            await pilot.press(*["pagedown"] * (2 + trial % 5))
            await fetch_done(app)
            await pilot.pause()
            task = table.selected
            assert task is not None
            key, target = ("plus", task.priority + 1) if task.priority < 9 else ("minus", 8)
            t0 = time.perf_counter()
            # as a terminal delivers it (the pilot's press() also waits for the app to idle)
            app.post_message(events.Key(key, "+" if key == "plus" else "-"))
            while True:
                shown = table.selected
                if shown is not None and shown.id == task.id and shown.priority == target:
                    break
                await asyncio.sleep(0.0005)
            table.render_line(table.cursor - int(table.scroll_y))
            keys.append((time.perf_counter() - t0) * 1000)
            await fetch_done(app)
            await pilot.press("home")
            await fetch_done(app)
        result["priority_key_ms"] = summary(keys)
    return result


# -- 2. CPU of the console vs the headless engine ------------------------------------


def taskdeck(*args: str) -> list[str]:
    return [sys.executable, "-m", "console.cli", *args]


def cpu_of(command: list[str], warmup: float, window: float, tty: bool) -> float:
    """Percent of one core used by ``command`` (and its children) over ``window`` s."""
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "160", "LINES": "50"}
    if tty:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
        proc = subprocess.Popen(
            command, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=ROOT,
            start_new_session=True,
        )  # fmt: skip
        os.close(slave)

        def drain() -> None:  # a terminal that reads everything, like a real one
            while True:
                try:
                    if not os.read(master, 65536):
                        return
                except OSError:
                    return

        threading.Thread(target=drain, daemon=True).start()
    else:
        proc = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=ROOT
        )
    try:
        time.sleep(warmup)
        me = psutil.Process(proc.pid)

        def used() -> float:
            total = sum(me.cpu_times()[:4])  # user, system and of reaped children
            for child in me.children(recursive=True):
                with contextlib.suppress(psutil.NoSuchProcess):
                    total += sum(child.cpu_times()[:2])
            return total

        c0, t0 = used(), time.monotonic()
        time.sleep(window)
        return round((used() - c0) / (time.monotonic() - t0) * 100, 2)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def cpu_comparison(tmp: Path, warmup: float, window: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for case, extra in (("idle", ["--no-demo"]), ("demo_load", [])):
        store = str(tmp / f"cpu-{case}-console.db")
        console = cpu_of(taskdeck("console", "--store", store, *extra), warmup, window, True)
        store = str(tmp / f"cpu-{case}-headless.db")
        headless = cpu_of(
            taskdeck("run", "--headless", "--store", store, *extra), warmup, window, False
        )
        out[case] = {
            "console_process_cpu_pct": console,
            "headless_engine_cpu_pct": headless,
            "console_own_cpu_pct": round(console - headless, 2),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller store, short windows")
    parser.add_argument("--tasks", type=int, help="queued tasks to fill (default 1,000,000)")
    args = parser.parse_args()
    count = args.tasks or (100_000 if args.quick else 1_000_000)
    trials = 10 if args.quick else 30
    warmup, window = (4.0, 8.0) if args.quick else (10.0, 30.0)
    result: dict[str, Any] = {"tasks": count, "cpu_count": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "million.db"
        result["fill_seconds"] = round(asyncio.run(fill(path, count)), 1)
        result.update(asyncio.run(at_scale(path, count, trials)))
        result["cpu"] = cpu_comparison(Path(tmp), warmup, window)
    result["targets"] = {
        "refresh_ms_median": "< 50",
        "priority_key_ms_median": "< 100",
        "console_own_cpu_idle": "<= 2",
        "console_own_cpu_demo": "<= 15",
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
