"""The live stack of a running task: async, thread and process handlers waiting at a
known line show that line, with the handler's function first; another node's task
through ``engine.stack`` and ``taskdeck stack``; clear errors otherwise."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine import Engine, StackTrace, TaskNotFound, TaskNotRunning
from tests import stack_handlers
from tests.conftest import ROOT, EngineFactory, started, taskdeck
from tests.stack_handlers import line_of

HANDLERS = Path(stack_handlers.__file__).resolve()


async def stack_at(engine: Engine, task_id: str, line: int, timeout: float = 10.0) -> StackTrace:
    """The task's stack once its handler stands at ``line`` (a worker process needs a
    moment to import the handler)."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                trace = await engine.stack(task_id)
            except TaskNotRunning:  # a process task between its claim and its child
                trace = None
            if trace is not None and trace.top is not None and trace.top.line == line:
                return trace
            await asyncio.sleep(0.05)


def assert_waits_at(trace: StackTrace, function: str, marker: str) -> None:
    first = trace.frames[0]
    assert (first.function, first.line) == (function, line_of(marker))
    assert Path(first.file).resolve() == HANDLERS
    assert marker in first.source
    # what called the handler is one folded line at the end, not dozens of frames
    assert trace.frames[-1].folded > 0
    assert all(f.folded or Path(f.file).resolve() == HANDLERS for f in trace.frames)


async def test_async_thread_and_process_stacks_show_the_waiting_line(
    make_engine: EngineFactory,
) -> None:
    # Given an engine running an async, a thread and a process handler, each waiting
    engine = make_engine(workers=4)
    engine.task(name="a")(stack_handlers.async_waiter)
    engine.task(name="t", executor="thread")(stack_handlers.thread_waiter)
    engine.task(name="p", executor="process")(stack_handlers.process_waiter)
    engine.task(name="pa", executor="process")(stack_handlers.process_async_waiter)
    stack_handlers.RELEASE.clear()
    cases = [
        ("a", "async", "async_waiter", "ASYNC WAITS HERE"),
        ("t", "thread", "thread_waiter", "THREAD WAITS HERE"),
        ("p", "process", "process_waiter", "PROCESS WAITS HERE"),
        ("pa", "process", "process_async_waiter", "PROCESS ASYNC WAITS HERE"),
    ]
    async with engine:
        sub = engine.events()
        ids = [str(await engine.enqueue(name, {})) for name, *_ in cases]
        await started(sub, len(cases))
        # When their stacks are taken, Then each shows its handler at the waiting line
        for task_id, (_, executor, function, marker) in zip(ids, cases, strict=True):
            trace = await stack_at(engine, task_id, line_of(marker))
            assert (trace.executor, trace.node, trace.task_id) == (
                executor,
                engine.node,
                int(task_id),
            )
            assert_waits_at(trace, function, marker)
        stack_handlers.RELEASE.set()
        assert (await engine.wait(ids[1], timeout=5)).result == "released"
        for task_id in (ids[0], ids[2], ids[3]):
            await engine.cancel(task_id)


async def test_a_task_not_running_and_an_unknown_id_are_refused(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine(workers=0)
    async with engine:
        engine.task(name="later")(stack_handlers.async_waiter)
        task_id = await engine.enqueue("later", {})
        with pytest.raises(TaskNotRunning, match=r"task \d+ is not running \(it is queued\)"):
            await engine.stack(task_id)
        with pytest.raises(TaskNotFound):
            await engine.stack(999_999)


def start_node(store: str, name: str) -> subprocess.Popen[str]:
    env = {**os.environ, "NODE_STORE": store, "NODE_NAME": name, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "console.cli", "run", "--headless", "--interval", "60"]
    return subprocess.Popen(
        [*command, "--app", "tests.stack_handlers:app"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


async def test_the_stack_of_a_task_on_another_node(store_url: str) -> None:
    # Given a node process running a process handler that waits, on a shared store
    # (a SQLite file, then PostgreSQL)
    store = store_url
    node = start_node(store, "node-a")
    marker = "PROCESS WAITS HERE"
    try:
        async with Engine(store, workers=0, strict_handlers=False, name="asker") as engine:
            task_id = str(await engine.enqueue("wait", {"seconds": 30}))
            # When this engine (no workers) asks for the stack
            trace = await stack_at(engine, task_id, line_of(marker), timeout=20)
            # Then the node that runs it answers with the handler's line
            assert (trace.node, trace.executor) == ("node-a", "process")
            assert_waits_at(trace, "process_waiter", marker)
            # And the command line shows it too, as JSON and as text
            out = await asyncio.to_thread(taskdeck, "--store", store, "stack", task_id, "--json")
            assert out.returncode == 0, out.stderr
            shown = StackTrace.from_dict(json.loads(out.stdout))
            assert (shown.node, shown.frames[0].line) == ("node-a", line_of(marker))
            text = await asyncio.to_thread(taskdeck, "--store", store, "stack", task_id)
            assert f'File "tests/stack_handlers.py", line {line_of(marker)}' in text.stdout
            assert "in process_waiter" in text.stdout and "engine frame" in text.stdout
            await engine.cancel(task_id)
            # A finished task: one clear line, exit 1
            gone = await asyncio.to_thread(taskdeck, "--store", store, "stack", task_id)
            assert gone.returncode == 1
            assert "is not running (it is cancelled)" in gone.stderr
            assert "Traceback" not in gone.stderr
    finally:
        node.terminate()
        node.wait(10)
