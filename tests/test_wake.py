"""Cross-process wake-ups on a SQLite store: work another process makes ready starts
at once, not at the next poll; dead processes' sockets, read-only clients and stops
leave nothing behind that breaks or litters anything."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import Engine, TaskRecord, TaskState
from engine.store.sqlite.wake import wake_dirs

from .cli_helpers import COMMAND, ROOT, cli_env

#: Far longer than any wake-up takes: a task that starts sooner was not found by a poll.
SLOW_POLL = {"poll_interval": 5.0, "lease_ttl": 30.0}
BOUND = 1.5  # seconds from enqueue to start, generously

PRODUCE = """
import asyncio, sys
from engine import Engine

async def main() -> None:
    engine = Engine(sys.argv[1], workers=0, strict_handlers=False)
    async with engine.client(create=False):
        print(await engine.enqueue("job", {}))

asyncio.run(main())
"""


BIND_AND_EXIT = """
import socket, sys
socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).bind(sys.argv[1])
print("bound")
"""


def worker(path: Path) -> Engine:
    engine = Engine(path, workers=2, **SLOW_POLL)

    @engine.task(name="job")
    async def job() -> str:
        return "done"

    @engine.task(name="images.resize")  # the name `taskdeck enqueue --store` knows
    async def resize(image_id: str, bytes: int) -> int:
        return bytes

    return engine


@pytest.fixture
def short_db() -> Iterator[Path]:
    """A store in a short directory, so its wake socket fits beside it: pytest's own
    temporary paths can be longer than a socket path may be (under pytest-xdist)."""
    folder = Path(tempfile.mkdtemp(prefix="tdw"))
    try:
        yield folder / "tasks.db"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def sockets(folder: Path) -> list[str]:
    return sorted(n for n in os.listdir(folder) if n.endswith(".sock")) if folder.exists() else []


async def produce(*command: str) -> str:
    """Run a process to its end; returns the last line it printed (a task id)."""
    proc = await asyncio.create_subprocess_exec(
        *command,
        cwd=ROOT,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return out.decode().strip().splitlines()[-1]


async def started_soon(engine: Engine, task_id: str) -> TaskRecord:
    record = await engine.wait(task_id, timeout=30)
    assert record.state == TaskState.SUCCEEDED
    assert record.started_at is not None
    assert record.started_at - record.created_at < BOUND, "found by a poll, not woken"
    return record


@pytest.mark.parametrize("producer", ["cli", "client"])
async def test_a_producer_in_another_process_wakes_an_idle_worker(
    db_path: Path, producer: str
) -> None:
    engine = worker(db_path)
    async with engine:
        for _ in range(2):  # twice: the worker sleeps again in between
            if producer == "cli":
                args = ["enqueue", "images.resize", '{"image_id": "a", "bytes": 10}']
                task_id = await produce(*COMMAND, *args, "--store", str(db_path))
            else:
                task_id = await produce(sys.executable, "-c", PRODUCE, str(db_path))
            await started_soon(engine, task_id)


async def test_wake_ups_close_together_are_merged_but_none_is_lost(db_path: Path) -> None:
    """A wake-up that comes right after another (the first task already done, the
    worker idle again) is held back a moment and merged, never dropped."""
    engine = worker(db_path)
    async with engine:
        producer = Engine(db_path, workers=0, strict_handlers=False)
        async with producer.client(create=False):
            for _ in range(10):
                await started_soon(engine, str(await producer.enqueue("job", {})))
                await started_soon(engine, str(await producer.enqueue("job", {})))
            burst = [await producer.enqueue("job", {}) for _ in range(30)]
        for task_id in burst:
            await started_soon(engine, str(task_id))


async def test_a_resume_and_a_retry_from_another_process_wake_the_worker(db_path: Path) -> None:
    engine = worker(db_path)
    calls: list[str] = []

    @engine.task(name="flaky", retries=0)
    async def flaky() -> None:
        calls.append("run")
        if len(calls) == 1:
            raise RuntimeError("the first run fails")

    async with engine:
        failed = await engine.wait(await engine.enqueue("flaky", {}), timeout=30)
        assert failed.state == TaskState.FAILED
        await engine.pause("default")
        held = await engine.enqueue("job", {})
        operator = Engine(db_path, workers=0, strict_handlers=False)
        async with operator.client(create=False):  # as `taskdeck resume` / `retry` do
            await operator.resume("default")
            resumed_at = time.time()
            await operator.retry(failed.id)
            retried_at = time.time()
        for task_id, since in ((held, resumed_at), (failed.id, retried_at)):
            record = await engine.wait(task_id, timeout=30)
            assert record.state == TaskState.SUCCEEDED and record.started_at is not None
            assert record.started_at - since < BOUND, "found by a poll, not woken"


async def test_a_dead_process_socket_does_not_break_enqueue_and_is_removed(
    short_db: Path,
) -> None:
    db_path = short_db
    engine = worker(db_path)
    async with engine:
        beside, _ = wake_dirs(db_path)
        (ours,) = sockets(beside)
        dead = beside / "999999999-deadbeef.sock"
        await produce(sys.executable, "-c", BIND_AND_EXIT, str(dead))
        assert sockets(beside) == sorted([ours, dead.name])  # its process has exited
        producer = Engine(db_path, workers=0, strict_handlers=False)
        async with producer.client(create=False):
            task_id = await producer.enqueue("job", {})
            await producer.enqueue("job", {})  # and the next enqueue is as good
        assert sockets(beside) == [ours]  # the first send met it and removed it
        await started_soon(engine, str(task_id))


async def test_read_only_and_command_clients_bind_nothing(db_path: Path) -> None:
    async with Engine(db_path, workers=0, strict_handlers=False) as filler:
        await filler.enqueue("job", {})
    assert os.listdir(db_path.parent) == [db_path.name]
    beside, fallback = wake_dirs(db_path)
    reader = Engine(db_path, workers=0, strict_handlers=False)
    async with reader.client(read_only=True):
        assert (await reader.counts())[TaskState.QUEUED] == 1
        assert not beside.exists() and not fallback.exists()
    async with reader.client():  # what `taskdeck enqueue` and the other commands open
        await reader.enqueue("job", {})
        assert not beside.exists() and not fallback.exists()
    assert os.listdir(db_path.parent) == [db_path.name]


async def test_a_stop_removes_its_socket_and_leaves_the_store_directory_as_it_was(
    short_db: Path,
) -> None:
    db_path = short_db
    beside, _ = wake_dirs(db_path)
    first, second = worker(db_path), worker(db_path)
    try:
        await first.start()
        (one,) = sockets(beside)
        assert beside.stat().st_mode & 0o777 == 0o700
        await second.start()
        assert len(sockets(beside)) == 2
        await first.stop()
        assert len(sockets(beside)) == 1 and one not in sockets(beside)  # the other's stays
    finally:
        await first.stop()
        await second.stop()
    assert sorted(os.listdir(db_path.parent)) == [db_path.name]


async def test_a_store_too_deep_for_a_socket_path_wakes_through_the_temp_directory(
    tmp_path: Path,
) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    path = deep / "tasks.db"
    beside, fallback = wake_dirs(path)
    engine = worker(path)
    async with engine:
        assert not beside.exists() and len(sockets(fallback)) == 1
        task_id = await produce(sys.executable, "-c", PRODUCE, str(path))
        await started_soon(engine, task_id)
    assert sorted(os.listdir(deep)) == ["tasks.db"] and not fallback.exists()


async def test_a_task_enqueued_while_an_empty_claim_is_out_starts_at_once(
    db_path: Path,
) -> None:
    """The claim read the queue before the task was stored and came back empty: the
    enqueue's wake-up must not be lost to the 'no more work until the next poll'."""
    engine = Engine(db_path, workers=1, poll_interval=60.0, strict_handlers=False)

    @engine.task(name="job")
    async def job() -> str:
        return "ran"

    async with engine:
        store = engine._store
        real_claim = store.claim
        out, release = asyncio.Event(), asyncio.Event()

        async def slow_claim(*args: object, **kwargs: object) -> object:
            result = await real_claim(*args, **kwargs)  # type: ignore[arg-type]
            out.set()
            await release.wait()  # the empty answer is still on its way back
            return result

        store.claim = slow_claim  # type: ignore[method-assign]
        try:
            engine._state.kick()
            await asyncio.wait_for(out.wait(), 5)
            # Due an hour ago: stored as queued, not handed to the idle slot directly.
            past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
            task_id = await engine.enqueue("job", run_at=past)
        finally:
            store.claim = real_claim  # type: ignore[method-assign]
            release.set()
        record = await engine.wait(task_id, timeout=5)
        assert record.state == TaskState.SUCCEEDED and record.result == "ran"
