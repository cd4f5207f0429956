"""``taskdeck logs ID [--follow] [--json]``, the logs in ``show``, and
``run --headless --log-format json``."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from engine import Engine, TaskState, current_task

from . import log_handlers as lh
from .conftest import FAST, ROOT, taskdeck


async def _logged_task(db: Path) -> str:
    engine = Engine(db, workers=1, **FAST)
    engine.task(name="images.resize", executor="thread")(lh.three_lines)
    async with engine:
        task_id = await engine.enqueue("images.resize", {"name": "cat.png"})
        assert (await engine.wait(task_id, timeout=20)).state == TaskState.SUCCEEDED
    return task_id


async def test_logs_prints_the_lines_as_text_and_json(db_path: Path) -> None:
    task_id = await _logged_task(db_path)
    text = taskdeck("logs", task_id, "--store", str(db_path))
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert len(lines) == 3
    assert lines[0].endswith("#1 INFO     images.resize: resizing cat.png")
    assert lines[2].endswith("#1 ERROR    images.resize: done with cat.png")
    as_json = taskdeck("logs", task_id, "--json", "--store", str(db_path))
    rows = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [(r["attempt"], r["level"], r["message"]) for r in rows] == [
        (1, "INFO", "resizing cat.png"),
        (1, "WARNING", "cat.png is large"),
        (1, "ERROR", "done with cat.png"),
    ]
    # show and show --json include them
    shown = taskdeck("show", task_id, "--store", str(db_path)).stdout
    assert "logs\n" in shown and "images.resize: cat.png is large" in shown
    detail = json.loads(taskdeck("show", task_id, "--json", "--store", str(db_path)).stdout)
    assert [r["message"] for r in detail["logs"]][1] == "cat.png is large"
    # an unknown id: one line, exit 1
    missing = taskdeck("logs", "424242", "--store", str(db_path))
    assert missing.returncode == 1
    assert missing.stderr.strip() == "taskdeck: error: no task with id '424242'"


async def test_follow_prints_new_lines_and_exits_when_the_task_ends(db_path: Path) -> None:
    # Given a running task that has logged one line and waits
    gate, logged = threading.Event(), threading.Event()

    def slow_log(n: int) -> int:
        lh.log.info("first of %d", n)
        logged.set()
        gate.wait(30)
        lh.log.warning("second of %d", n)
        return n

    engine = Engine(db_path, workers=1, **FAST)
    engine.task(name="slow.log", executor="thread")(slow_log)
    async with engine:
        task_id = await engine.enqueue("slow.log", {"n": 2})
        assert await asyncio.to_thread(logged.wait, 30)
        # When taskdeck logs --follow runs
        follow = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "console.cli", "logs", task_id, "--follow",
            "--store", str(db_path), cwd=ROOT,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        assert follow.stdout is not None
        first = await asyncio.wait_for(follow.stdout.readline(), 30)
        assert first.decode().rstrip().endswith("images.resize: first of 2")
        # Then a new line shows as it is logged, and it exits 0 when the task ends
        gate.set()
        rest, err = await asyncio.wait_for(follow.communicate(), 30)
    assert follow.returncode == 0, err.decode()
    assert rest.decode().rstrip().endswith("WARNING  images.resize: second of 2")


async def test_follow_stops_cleanly_on_ctrl_c(db_path: Path) -> None:
    engine = Engine(db_path, workers=0, strict_handlers=False)
    async with engine:
        task_id = await engine.enqueue("never.runs", {})
    follow = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "console.cli", "logs", task_id, "-f", "--store", str(db_path),
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert follow.stderr is not None
    said = await asyncio.wait_for(follow.stderr.readline(), 30)
    assert said.decode().startswith(f"following task {task_id} until it finishes")
    follow.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(follow.communicate(), 30)
    assert follow.returncode == 0
    assert out == b"" and err == b""


async def test_headless_json_log_lines(db_path: Path) -> None:
    producer = Engine(db_path, workers=0, strict_handlers=False)
    async with producer:
        task_id = await producer.enqueue("images.resize", {"name": "cat.png"})
    node = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "console.cli", "run", "--headless", "--app",
        "tests.log_app:engine", "--log-format", "json", "--interval", "0.2", cwd=ROOT,
        env={**os.environ, "TASKDECK_TEST_STORE": str(db_path)},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert node.stderr is not None
    try:
        seen: list[dict[str, object]] = []
        while not any(r.get("task_id") == task_id for r in seen):
            line = await asyncio.wait_for(node.stderr.readline(), 30)
            assert line, "the node exited"
            seen.append(json.loads(line))  # every line is one JSON object
        node.send_signal(signal.SIGINT)
        rest = (await asyncio.wait_for(node.communicate(), 30))[1]
    finally:
        if node.returncode is None:
            node.kill()
            await node.wait()
    seen += [json.loads(line) for line in rest.decode().splitlines()]
    logged = next(r for r in seen if r.get("task_id") == task_id)
    assert logged["level"] == "WARNING" and logged["logger"] == "images.resize"
    assert logged["message"] == "cat.png is large"
    assert logged["handler"] == "images.resize" and logged["node"] == "node-logs"
    assert str(logged["time"]).endswith("Z") and "T" in str(logged["time"])
    assert str(seen[-1]["message"]).startswith("stopped;")
    assert node.returncode == 0


def test_a_bad_log_format_is_refused() -> None:
    bad = taskdeck("run", "--headless", "--log-format", "xml")
    assert bad.returncode == 2
    assert "--log-format: invalid choice: 'xml' (choose from 'text', 'json')" in bad.stderr


async def test_logs_prints_every_page_of_a_long_log(db_path: Path) -> None:
    def chatty(n: int) -> int:
        for i in range(n):
            current_task().log(f"line {i}")
        return n

    engine = Engine(db_path, workers=1, task_log_limit=1_000_000, **FAST)
    engine.task(name="chatty", executor="thread")(chatty)
    async with engine:
        task_id = await engine.enqueue("chatty", {"n": 10_050})
        assert (await engine.wait(task_id, timeout=30)).state == TaskState.SUCCEEDED
        assert len(await engine.logs(task_id)) == 10_000  # one page
    printed = taskdeck("logs", task_id, "--store", str(db_path)).stdout.splitlines()
    assert len(printed) == 10_050 and printed[-1].endswith("chatty: line 10049")
