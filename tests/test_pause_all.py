"""Pause everything: a flag in the store that every claim looks at, so no task starts
on any node — nodes started later included — until it is resumed; running tasks
finish, enqueues are still accepted, every engine's snapshot says who paused and why."""

from __future__ import annotations

import asyncio
import json
import signal
import time

import pytest

from engine import Engine, EventKind, TaskState

from .conftest import BOTH_BACKENDS, FAST, until
from .test_cluster_processes import start_node


@BOTH_BACKENDS
async def test_pause_all_holds_every_start_until_resumed(store: str) -> None:
    engine = Engine(store, workers=4, **FAST)
    started: list[int] = []
    gate = asyncio.Event()

    @engine.task(name="job")
    async def job(n: int) -> int:
        started.append(n)
        if n == 0:
            await gate.wait()  # running when everything is paused: it finishes
        return n

    async with engine:
        events = engine.events()
        first = await engine.enqueue("job", {"n": 0})
        await until(lambda: started == [0], what="the first task to start")
        assert await engine.pause_all(note="incident 42: database failover")
        assert not await engine.pause_all()  # already paused
        paused = engine.snapshot().all_paused
        assert paused is not None and paused.note == "incident 42: database failover"
        assert "@" in paused.by and paused.at > 0
        ids = [await engine.enqueue("job", {"n": n}) for n in range(1, 6)]  # still accepted
        await engine.enqueue_many([("job", {"n": n}) for n in range(6, 40)])
        gate.set()
        assert (await engine.wait(first, timeout=10)).state == TaskState.SUCCEEDED
        await asyncio.sleep(0.3)  # six polls: none may claim
        assert started == [0]
        assert (await engine.counts())["queued"] == 39
        assert (await engine.get(ids[0])).state == TaskState.QUEUED

        assert await engine.resume_all()
        assert not await engine.resume_all()
        assert engine.snapshot().all_paused is None
        await engine.drain(timeout=20)
        assert sorted(started) == list(range(40))
        kinds = [e.kind async for e in _take(events, 200)]
        assert EventKind.ALL_PAUSED in kinds and EventKind.ALL_RESUMED in kinds


async def _take(events: object, limit: int):  # type: ignore[no-untyped-def]
    """The events buffered so far (at most ``limit``), without waiting for more."""
    for _ in range(limit):
        try:
            yield await asyncio.wait_for(events.__anext__(), 0.05)  # type: ignore[attr-defined]
        except TimeoutError:
            return


@BOTH_BACKENDS
async def test_a_node_started_during_the_pause_starts_nothing_and_held_tasks_go_back(
    store: str,
) -> None:
    first = Engine(store, workers=2, **FAST)
    ran: list[str] = []

    @first.task(name="job")
    async def job(n: int) -> None:
        ran.append("first")
        await asyncio.sleep(0.01)

    async with first:
        await first.enqueue_many([("job", {"n": n}) for n in range(400)])
        await until(lambda: first.snapshot().buffered > 0, what="a full buffer")
        assert await first.pause_all(note="deploy")
        assert first.snapshot().buffered == 0  # held tasks given back unstarted at once
        await until(lambda: first.snapshot().busy_workers == 0, what="running tasks to end")
        done = len(ran)

        late = Engine(store, workers=4, **FAST)

        @late.task(name="job")
        async def late_job(n: int) -> None:
            ran.append("late")

        async with late:
            assert late.snapshot().all_paused is not None  # read with the counts at start
            assert late.snapshot().all_paused.note == "deploy"  # type: ignore[union-attr]
            await asyncio.sleep(0.3)
            assert len(ran) == done and "late" not in ran
            queued = (await late.counts())["queued"]
            assert queued == 400 - done
            # a resume from the other engine wakes this one too
            assert await first.resume_all()
            await until(lambda: "late" in ran, timeout=10, what="the late node to start work")
        await first.drain(timeout=30)
    assert len(ran) == 400


async def test_pause_all_refuses_a_bad_note(db_path: object) -> None:
    engine = Engine(db_path, workers=0, **FAST)  # type: ignore[arg-type]
    async with engine:
        with pytest.raises(ValueError, match="note: at most 500 characters"):
            await engine.pause_all(note="x" * 501)
        assert engine.snapshot().all_paused is None


async def test_pause_all_stops_starts_on_three_node_processes_within_a_second(
    pg_url: str,
) -> None:
    producer = Engine(pg_url, workers=0, strict_handlers=False, name="operator")
    async with producer:
        await producer.enqueue_many([("job", {"n": n}) for n in range(20_000)])
        nodes = [start_node(pg_url, f"node-{i}", sleep=0.005) for i in range(3)]
        try:
            await until(
                lambda: producer.snapshot().counts[TaskState.SUCCEEDED] > 200,
                timeout=60,
                what="the nodes to get going",
            )
            assert await producer.pause_all(note="stop the line")
            t0 = time.monotonic()
            await asyncio.sleep(1.0)
            queued_at_1s = (await producer.counts())["queued"]
            await producer.enqueue("job", {"n": -1})  # enqueues keep working
            late = start_node(pg_url, "node-late", sleep=0.005)  # joins during the pause
            nodes.append(late)
            await asyncio.sleep(1.5)
            counts = await producer.counts()
            assert counts["running"] == 0, counts
            # nothing left the queue after the first second (the +1 is the new task)
            assert counts["queued"] == queued_at_1s + 1, (queued_at_1s, counts)
            assert time.monotonic() - t0 < 10
            assert await producer.resume_all()
            await until(
                lambda: producer.snapshot().counts[TaskState.SUCCEEDED] == 20_001,
                timeout=120,
                what="everything to finish after the resume",
            )
        finally:
            for node in nodes:
                if node.poll() is None:
                    node.send_signal(signal.SIGTERM)
            for node in nodes:
                node.communicate(timeout=60)


async def test_console_P_pauses_everything_with_a_note_and_says_so_in_the_header(
    db_path: object,
) -> None:
    from textual.widgets import Input, Static

    from console.app import ConsoleApp
    from console.screens.pause_all import PauseAllScreen

    from .console_helpers import build_engine, settle, started, text_of, toasts

    engine = build_engine(db_path)  # type: ignore[arg-type]
    app = ConsoleApp(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        await pilot.press("P")
        assert isinstance(app.screen, PauseAllScreen)
        await pilot.press("escape")  # asked first: escape leaves it running
        await settle(pilot)
        assert engine.snapshot().all_paused is None
        await pilot.press("P")
        app.screen.query_one("#note", Input).value = "payments outage"
        await pilot.press("enter")
        await settle(pilot)
        paused = engine.snapshot().all_paused
        assert paused is not None and paused.note == "payments outage"
        app.refresh_tick()
        header = text_of(app.query_one("#header"))
        assert "ALL PAUSED by" in header and "payments outage" in header
        assert any("everything paused" in t for t in toasts(app))
        await pilot.press("P")  # now it offers to resume
        assert isinstance(app.screen, PauseAllScreen)
        title = app.screen.query_one(".dialog-title", Static)
        assert "Resume everything?" in str(title.render())
        await pilot.press("enter")
        await settle(pilot)
        assert engine.snapshot().all_paused is None
        app.refresh_tick()
        assert "ALL PAUSED" not in text_of(app.query_one("#header"))


def test_cli_pause_all_and_resume_all(tmp_path: object) -> None:
    from .conftest import taskdeck

    store = str(tmp_path) + "/t.db"  # type: ignore[operator]
    assert (
        taskdeck(
            "enqueue", "images.resize", '{"image_id": "a", "bytes": 1}', "--store", store
        ).returncode
        == 0
    )
    out = taskdeck("pause", "--all", "--note", "db failover", "--store", store)
    assert out.returncode == 0 and "everything paused" in out.stdout, out.stderr
    again = taskdeck("pause", "--all", "--store", store)
    assert "already paused (by " in again.stdout and "db failover" in again.stdout
    status = taskdeck("status", "--json", "--store", store)
    assert json.loads(status.stdout)["all_paused"]["note"] == "db failover"
    assert "ALL PAUSED by" in taskdeck("status", "--store", store).stdout
    bad = taskdeck("pause", "--store", store)
    assert bad.returncode == 2 and "name the queues to pause, or --all" in bad.stderr
    both = taskdeck("resume", "images", "--all", "--store", store)
    assert both.returncode == 2 and "not both" in both.stderr
    out = taskdeck("resume", "--all", "--store", store)
    assert out.returncode == 0 and "everything resumed" in out.stdout
    assert json.loads(taskdeck("status", "--json", "--store", store).stdout)["all_paused"] is None
    queue = taskdeck("pause", "images", "--store", store)
    assert queue.returncode == 0 and "images: paused" in queue.stdout
