"""Engine behaviour an operator relies on: order, steering, cancel, retry, resize, events."""

from __future__ import annotations

import asyncio
import random
import threading
import time

import pytest

from engine import EventKind, InvalidTransition, StoreError, TaskState, current_task

from .conftest import EngineFactory, started, until


async def test_priority_order_then_fifo_with_one_worker(make_engine: EngineFactory) -> None:
    # Given 1,000 tasks of mixed priorities waiting before any worker runs
    engine = make_engine(workers=0)
    started: list[tuple[int, int]] = []

    @engine.task(name="job")
    async def job(priority: int) -> None:
        started.append((priority, int(current_task().id)))

    rng = random.Random(3)
    async with engine:
        priorities = [rng.randint(0, 9) for _ in range(1000)]
        ids = await engine.enqueue_many(
            [("job", {"priority": p}, {"priority": p}) for p in priorities]
        )
        # When one worker processes them
        await engine.set_workers(1)
        await engine.drain(timeout=60)
    # Then higher priorities start first and, within a priority, enqueue order holds
    assert len(started) == 1000
    assert started == sorted(started, key=lambda s: (-s[0], s[1]))
    assert {str(tid) for _, tid in started} == set(ids)


async def test_reprioritize_takes_effect_on_the_next_claim(make_engine: EngineFactory) -> None:
    engine = make_engine(workers=1)
    order: list[str] = []
    busy, gate = asyncio.Event(), asyncio.Event()

    @engine.task(name="step")
    async def step(label: str) -> None:
        order.append(label)
        if label == "first":
            busy.set()
            await gate.wait()

    async with engine:
        await engine.enqueue("step", {"label": "first"})
        await asyncio.wait_for(busy.wait(), 5)
        await engine.enqueue("step", {"label": "b"}, priority=5)
        late = await engine.enqueue("step", {"label": "c"}, priority=5)
        # When c is raised to 9 while the worker is busy
        assert await engine.reprioritize(late, "critical") == 5
        gate.set()
        await engine.drain(timeout=10)
    # Then c overtakes b
    assert order == ["first", "c", "b"]
    record = await _record_after(engine, late)
    assert record.priority == 9


async def _record_after(engine, task_id):  # type: ignore[no-untyped-def]
    async with engine:
        return await engine.get(task_id)


async def test_pause_holds_a_queue_and_resume_releases_it(make_engine: EngineFactory) -> None:
    engine = make_engine(workers=2)
    ran: list[str] = []

    @engine.task(name="mail", queue="emails")
    async def mail(to: str) -> None:
        ran.append(to)

    @engine.task(name="thumb", queue="images")
    async def thumb(name: str) -> None:
        ran.append(name)

    async with engine:
        assert await engine.pause("emails") is True
        assert await engine.pause("emails") is False  # already paused
        held = await engine.enqueue("mail", {"to": "ada"})
        await engine.enqueue("thumb", {"name": "cat.png"})
        await engine.drain(timeout=5)  # paused queues do not hold drain up
        assert ran == ["cat.png"]
        assert (await engine.get(held)).state == TaskState.QUEUED
        snap = engine.snapshot()
        assert snap.queues["emails"].paused and snap.queues["emails"].depth == 1
        assert "emails" in snap.paused_queues
        assert await engine.resume("emails") is True
        assert (await engine.wait(held, timeout=5)).state == TaskState.SUCCEEDED
    assert ran == ["cat.png", "ada"]


async def test_cancel_queued_running_and_finished(make_engine: EngineFactory) -> None:
    engine = make_engine(workers=1)
    entered = asyncio.Event()
    saw_cancel = asyncio.Event()

    @engine.task(name="long")
    async def long() -> None:
        entered.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            saw_cancel.set()
            raise

    @engine.task(name="quick")
    async def quick() -> str:
        return "done"

    async with engine:
        running = await engine.enqueue("long")
        waiting = await engine.enqueue("quick")
        await asyncio.wait_for(entered.wait(), 5)
        # A queued task is cancelled without ever running
        assert await engine.cancel(waiting) == TaskState.QUEUED
        # A running async task is stopped at once
        t0 = time.monotonic()
        assert (
            await engine.cancel(running, reason="operator changed their mind") == TaskState.RUNNING
        )
        await asyncio.wait_for(saw_cancel.wait(), 1)
        assert time.monotonic() - t0 < 0.5
        record = await engine.wait(running, timeout=5)
        assert record.state == TaskState.CANCELLED
        assert record.timeline[-1].note == "operator changed their mind"
        assert record.timeline[-1].by == engine.audit.actor.who  # user@host
        assert (await engine.get(waiting)).state == TaskState.CANCELLED
        # The freed worker takes new work
        done = await engine.enqueue("quick")
        assert (await engine.wait(done, timeout=5)).result == "done"
        with pytest.raises(
            InvalidTransition, match=f"task {done} already succeeded; nothing to cancel"
        ):
            await engine.cancel(done)
        with pytest.raises(LookupError, match="no task with id '999999'"):
            await engine.cancel("999999")
        # A cancelled task can be retried
        assert await engine.retry(waiting) == TaskState.CANCELLED
        assert (await engine.wait(waiting, timeout=5)).state == TaskState.SUCCEEDED


async def test_cancel_running_thread_task_is_best_effort(make_engine: EngineFactory) -> None:
    engine = make_engine(workers=1)
    noticed = threading.Event()

    @engine.task(name="blocking")
    def blocking() -> str:
        ctx = current_task()
        ctx.cancel_event.wait(10)
        if ctx.cancelled:
            noticed.set()
        return "late result"

    async with engine:
        sub = engine.events(kinds=[EventKind.STARTED])
        tid = await engine.enqueue("blocking")
        await started(sub)
        await engine.cancel(tid)
        assert await asyncio.to_thread(noticed.wait, 5)
        # The handler returns after it noticed; its abandoned thread is then released.
        await until(lambda: engine.snapshot().stats["leaked_threads"] == 0, what="thread return")
        record = await engine.get(tid)
        # The task is cancelled and its late result dropped
        assert record.state == TaskState.CANCELLED and record.result is None


async def test_retry_from_failed_gets_a_fresh_budget(make_engine: EngineFactory) -> None:
    engine = make_engine(workers=1)
    calls: list[int] = []

    @engine.task(name="flaky", retries=0)
    async def flaky() -> str:
        calls.append(current_task().attempt)
        if len(calls) == 1:
            raise RuntimeError("first time fails")
        return "ok"

    @engine.task(name="parked", queue="parked")
    async def parked() -> None: ...

    async with engine:
        tid = await engine.enqueue("flaky")
        failed = await engine.wait(tid, timeout=5)
        assert failed.state == TaskState.FAILED and failed.attempts == 1
        assert "RuntimeError: first time fails" in (failed.error or "")
        await engine.pause("parked")
        with pytest.raises(InvalidTransition, match="is queued; only failed or cancelled"):
            await engine.retry(await engine.enqueue("parked"))
        assert await engine.retry(tid) == TaskState.FAILED
        done = await engine.wait(tid, timeout=5)
    assert done.state == TaskState.SUCCEEDED and done.attempts == 2 and done.result == "ok"
    assert calls == [1, 2]


async def test_resize_under_load_loses_and_repeats_nothing(make_engine: EngineFactory) -> None:
    engine = make_engine(workers=2)
    runs: dict[int, int] = {}
    peak = 0
    active = 0

    @engine.task(name="work")
    async def work(n: int) -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        runs[n] = runs.get(n, 0) + 1
        await asyncio.sleep(0.01)
        active -= 1

    async with engine:
        await engine.enqueue_many([("work", {"n": i}) for i in range(300)])
        for size in (16, 3, 24, 1, 8):
            await asyncio.sleep(0.05)
            await engine.set_workers(size)
            assert engine.snapshot().worker_count == size
        await engine.drain(timeout=30)
        snap = engine.snapshot()
    assert sorted(runs) == list(range(300)) and set(runs.values()) == {1}
    assert snap.counts[TaskState.SUCCEEDED] == 300
    assert len(snap.workers) == 8 and all(w.state == "idle" for w in snap.workers)
    assert [w.id for w in snap.workers] == [f"w{i}" for i in range(1, 9)]
    assert peak <= 24


async def test_shrink_waits_for_running_tasks(make_engine: EngineFactory) -> None:
    engine = make_engine(workers=4)
    release = asyncio.Event()

    @engine.task(name="hold")
    async def hold() -> None:
        await release.wait()

    async with engine:
        sub = engine.events(kinds=[EventKind.STARTED])
        ids = await engine.enqueue_many([("hold", None)] * 4)
        await started(sub, 4)
        await engine.set_workers(1)
        snap = engine.snapshot()
        assert snap.worker_count == 1
        assert sorted(w.state for w in snap.workers) == ["busy", "retiring", "retiring", "retiring"]
        release.set()
        for tid in ids:
            assert (await engine.wait(tid, timeout=5)).state == TaskState.SUCCEEDED
        assert [w.id for w in engine.snapshot().workers] == ["w1"]


async def test_progress_and_context_are_visible(make_engine: EngineFactory) -> None:
    engine = make_engine(workers=1)
    gate = asyncio.Event()
    seen: dict[str, object] = {}

    @engine.task(name="report")
    async def report() -> str:
        ctx = current_task()
        seen.update(id=ctx.id, attempt=ctx.attempt, handler=ctx.handler)
        ctx.progress(0.4, "rendering page 2 of 5")
        await gate.wait()
        return "ok"

    async with engine:
        events = engine.events(kinds=[EventKind.PROGRESS])
        tid = await engine.enqueue("report")
        progress_event = await asyncio.wait_for(events.get(), 5)
        worker = next(w for w in engine.snapshot().workers if w.state == "busy")
        assert (worker.task_id, worker.handler, worker.progress) == (tid, "report", 0.4)
        assert worker.message == "rendering page 2 of 5" and worker.elapsed is not None
        assert progress_event.task_id == tid and "40%" in progress_event.message
        stored = await engine.get(tid)
        assert (stored.progress, stored.progress_message) == (0.4, "rendering page 2 of 5")
        gate.set()
        await engine.wait(tid, timeout=5)
    assert seen == {"id": tid, "attempt": 1, "handler": "report"}
    with pytest.raises(RuntimeError, match="outside a running task"):
        current_task()


async def test_events_cover_a_task_life(make_engine: EngineFactory) -> None:
    engine = make_engine(workers=1)

    @engine.task(name="ok")
    async def ok() -> int:
        return 1

    async with engine:
        sub = engine.events()
        tid = await engine.enqueue("ok")
        await engine.wait(tid, timeout=5)
        kinds = []
        while (event := sub.get_nowait()) is not None:
            if event.task_id == tid:
                kinds.append(event.kind)
        sub.close()
    assert kinds == [EventKind.ENQUEUED, EventKind.STARTED, EventKind.SUCCEEDED]


async def test_a_subscriber_that_never_reads_drops_events_and_slows_nothing(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine(workers=16)

    @engine.task(name="noop")
    async def noop() -> None:
        return None

    async with engine:
        stuck = engine.events(maxsize=10)
        await engine.enqueue_many([("noop", None)] * 2000)
        await engine.drain(timeout=30)
        assert stuck.pending() == 10
        assert stuck.dropped >= 2000 * 3 - 10
        assert engine.snapshot().stats["dropped_events"] >= stuck.dropped
        async for event in stuck:  # the ten it kept are the oldest, in order
            assert event.kind == EventKind.ENQUEUED
            if stuck.pending() == 0:
                break


async def test_tasks_pages_and_filters(make_engine: EngineFactory) -> None:
    engine = make_engine(workers=0)

    @engine.task(name="a", queue="q1")
    async def a(n: int) -> None: ...

    @engine.task(name="b", queue="q2")
    async def b(n: int) -> None: ...

    async with engine:
        ids = await engine.enqueue_many(
            [("a" if i % 2 else "b", {"n": i}, {"priority": i % 10}) for i in range(50)]
        )
        page = await engine.tasks(state="queued", limit=10)
        assert len(page) == 10 and page.total == 50
        assert [r.priority for r in page] == sorted((r.priority for r in page), reverse=True)
        second = await engine.tasks(state=TaskState.QUEUED, limit=10, offset=10)
        assert not {r.id for r in page} & {r.id for r in second}
        everything = [r.id for r in await engine.tasks(state="queued", limit=100)]
        for offset in range(0, 52, 7):  # back-half windows are read in reverse: same rows
            window = await engine.tasks(state="queued", limit=7, offset=offset)
            assert [r.id for r in window] == everything[offset : offset + 7], offset
        q1 = await engine.tasks(queue="q1", limit=100)
        assert len(q1) == 25 and q1.total == 25 and {r.handler for r in q1} == {"a"}
        by_handler = await engine.tasks(handler="b", limit=100)
        assert len(by_handler) == 25
        prefix = await engine.tasks(id_prefix=ids[0], limit=100)
        assert ids[0] in {r.id for r in prefix}
        assert await engine.tasks(state="failed") == []
        with pytest.raises(ValueError, match="unknown task state 'done'"):
            await engine.tasks(state="done")
        with pytest.raises(ValueError, match="limit must be"):
            await engine.tasks(limit=-1)


async def test_position_is_the_offset_in_the_listing(make_engine: EngineFactory) -> None:
    engine = make_engine(workers=1)

    @engine.task(name="a", queue="q1")
    async def a(n: int) -> None: ...

    @engine.task(name="b", queue="q2")
    async def b(n: int) -> None: ...

    async with engine:
        done = await engine.enqueue_many([("a", {"n": i}) for i in range(5)])
        for tid in done:
            await engine.wait(tid, timeout=5)
        await engine.set_workers(0)
        await engine.enqueue_many(
            [("a" if i % 3 else "b", {"n": i}, {"priority": (i * 7) % 10}) for i in range(40)]
        )
        await engine.enqueue_many([("b", {"n": i}, {"delay": 100 + i % 3}) for i in range(9)])
        for state, queue, handler in [
            ("scheduled", None, None),
            ("queued", None, None),
            ("queued", "q2", None),
            ("queued", None, "a"),
            ("succeeded", None, None),
            (None, None, None),
        ]:
            listing = await engine.tasks(state, queue, handler=handler, limit=100)
            positions = [
                await engine.position(t.id, state, queue, handler=handler) for t in listing
            ]
            assert positions == list(range(len(listing))), (state, queue, handler)
            # the page around each task is the same slice of the listing
            ids = [t.id for t in listing]
            for i, task in enumerate(listing):
                for before, limit in ((0, 5), (3, 7), (10, 4)):
                    page = await engine.tasks_around(
                        task.id, state, queue, limit, before, handler=handler
                    )
                    assert page is not None
                    start = max(0, i - min(before, limit - 1))
                    assert page.offset == start, (state, queue, handler, i, before)
                    assert [t.id for t in page] == ids[start : start + limit]
        queued_b = (await engine.tasks("queued", "q2", limit=1))[0]
        assert await engine.tasks_around(queued_b.id, "queued", "q1") is None
        with pytest.raises(ValueError, match="before must be a whole number from 0 to 10,000"):
            await engine.tasks_around(queued_b.id, "queued", limit=5, before=-1)
        assert await engine.position(queued_b.id, "queued", "q1") is None  # other queue
        assert await engine.position(done[0], "queued") is None  # other state
        await engine.reprioritize(queued_b.id, 9)
        top = await engine.tasks("queued", limit=100)
        assert await engine.position(queued_b.id, "queued") == [t.id for t in top].index(
            queued_b.id
        )


async def test_delayed_task_is_scheduled_then_runs(make_engine: EngineFactory) -> None:
    engine = make_engine(workers=1)
    started: list[float] = []

    @engine.task(name="later")
    async def later() -> None:
        started.append(time.time())

    async with engine:
        t0 = time.time()
        tid = await engine.enqueue("later", delay=0.3)
        assert (await engine.get(tid)).state == TaskState.SCHEDULED
        record = await engine.wait(tid, timeout=5)
    assert record.state == TaskState.SUCCEEDED
    assert 0.3 <= started[0] - t0 < 0.6
    assert [e.state for e in record.timeline][:2] == [TaskState.SCHEDULED, TaskState.QUEUED]


async def test_graceful_stop_requeues_running_tasks_without_using_an_attempt(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine(workers=2, shutdown_grace=0.2)

    @engine.task(name="slow")
    async def slow() -> None:
        await asyncio.sleep(30)

    await engine.start()
    sub = engine.events(kinds=[EventKind.INTERRUPTED])
    starts = engine.events(kinds=[EventKind.STARTED])
    ids = await engine.enqueue_many([("slow", None)] * 3)
    await started(starts, 2)
    t0 = time.monotonic()
    await engine.stop()
    assert time.monotonic() - t0 < 1.5
    assert sub.pending() == 2
    async with engine:
        await engine.set_workers(0)
        records = [await engine.get(i) for i in ids]
    assert [r.state for r in records] == [TaskState.QUEUED] * 3
    assert [r.attempts for r in records] == [0, 0, 0]
    assert any("interrupted by shutdown" in (e.note or "") for e in records[0].timeline)


async def test_snapshot_without_io(make_engine: EngineFactory) -> None:
    engine = make_engine(workers=3)

    @engine.task(name="x", queue="alpha")
    async def x() -> None: ...

    before = engine.snapshot()
    assert not before.running and before.worker_count == 3 and before.workers == ()
    async with engine:
        await engine.enqueue_many([("x", None)] * 5)
        await engine.drain(timeout=5)
        snap = engine.snapshot()
    assert snap.running and snap.worker_count == 3 and len(snap.workers) == 3
    assert snap.counts[TaskState.SUCCEEDED] == 5 and set(snap.counts) == set(TaskState)
    assert snap.queues["alpha"].depth == 0 and not snap.queues["alpha"].paused
    assert snap.settings.lease_ttl == 2.0
    assert snap.throughput > 0


async def test_a_task_cancelled_before_its_first_step_frees_its_slot(
    make_engine: EngineFactory,
) -> None:
    # Given a pool whose first claimed task is stopped before it ever runs
    engine = make_engine(workers=1)
    ran: list[int] = []

    @engine.task(name="t")
    async def t(n: int) -> None:
        ran.append(n)

    async with engine:
        pool = engine._state.pool
        assert pool is not None
        original, first = pool._start, True

        def start_then_cancel(claimed):  # type: ignore[no-untyped-def]
            nonlocal first
            original(claimed)
            if first:
                first = False
                pool.cancel_local(claimed.id)

        pool._start = start_then_cancel  # type: ignore[method-assign]
        await engine.enqueue("t", {"n": 1})
        second = await engine.enqueue("t", {"n": 2})
        # Then the one worker slot is free again and runs the next task
        assert (await engine.wait(second, timeout=5)).state == TaskState.SUCCEEDED
        assert engine.snapshot().busy_workers == 0
    assert ran == [2]


async def test_an_idle_worker_takes_a_new_task_in_the_enqueue_transaction(
    make_engine: EngineFactory,
) -> None:
    # Given idle workers and nothing waiting, an enqueued task starts without a claim
    engine = make_engine(workers=2)
    gate = asyncio.Event()

    @engine.task(name="job")
    async def job(n: int) -> int:
        await gate.wait()
        return n

    @engine.task(name="parked", queue="parked")
    async def parked() -> None: ...

    async with engine:
        first = await engine.enqueue("job", {"n": 1})
        assert engine.snapshot().busy_workers == 1  # started as the enqueue returned
        # Inserted and claimed in one transaction: one transaction time for both (a count
        # of the store's transactions would also count the services' own writes).
        started = await engine.get(first)
        assert started.state == TaskState.RUNNING and started.started_at == started.created_at
        # A paused queue's task is never handed over
        await engine.pause("parked")
        held = await engine.enqueue("parked")
        assert (await engine.get(held)).state == TaskState.QUEUED
        # With every worker busy, new work waits in the queue in priority order
        second = await engine.enqueue("job", {"n": 2})
        third = await engine.enqueue("job", {"n": 3})
        low = await engine.enqueue("job", {"n": 4}, priority=0)
        assert (await engine.get(third)).state == TaskState.QUEUED
        gate.set()
        for tid in (first, second, third, low):
            assert (await engine.wait(tid, timeout=5)).state == TaskState.SUCCEEDED
        record = await engine.get(first)
    assert [e.state for e in record.timeline] == [
        TaskState.QUEUED,
        TaskState.RUNNING,
        TaskState.SUCCEEDED,
    ]
    assert record.attempts == 1 and record.started_at is not None


async def test_handle_sugar_enqueue_delay_and_plain_call(make_engine: EngineFactory) -> None:
    engine = make_engine(workers=2)

    @engine.task(name="images.resize", priority="low")
    async def resize(job_id: str, width: int, height: int = 1) -> list[object]:
        return [job_id, width, height]

    assert await resize("direct", 2, 3) == ["direct", 2, 3]  # still the plain function
    async with engine:
        a = await resize.enqueue({"job_id": "a", "width": 8}, priority=9)
        b = await resize.enqueue(job_id="b", width=4, height=2, queue="thumbs")
        c = await resize.delay("c", 5, height=7)
        with pytest.raises(TypeError, match=r"arguments do not match images.resize\("):
            await resize.delay("too", 1, 2, 3)
        records = [await engine.wait(t, timeout=5) for t in (a, b, c)]
    assert [r.result for r in records] == [["a", 8, 1], ["b", 4, 2], ["c", 5, 7]]
    assert [r.priority for r in records] == [9, 2, 2]
    assert records[1].queue == "thumbs"


async def test_cancel_a_scheduled_task(make_engine: EngineFactory) -> None:
    engine = make_engine(workers=1)

    @engine.task(name="later")
    async def later() -> None:
        raise AssertionError("a cancelled task must not run")

    async with engine:
        tid = await engine.enqueue("later", delay=0.2)
        assert await engine.cancel(tid) == TaskState.SCHEDULED
        await asyncio.sleep(0.4)  # past its due time: it must stay cancelled
        record = await engine.get(tid)
    assert record.state == TaskState.CANCELLED and record.attempts == 0


async def test_text_filter_and_bulk_retry(make_engine: EngineFactory) -> None:
    engine = make_engine(workers=1)

    @engine.task(name="images.resize", queue="images", retries=0)
    async def resize() -> None:
        raise OSError("disk full")

    @engine.task(name="mail.send", queue="emails", retries=0)
    async def send() -> None:
        raise OSError("smtp down")

    async with engine:
        await engine.enqueue_many([("images.resize", None)] * 3 + [("mail.send", None)] * 2)
        await engine.drain(timeout=10)
        assert len(await engine.tasks(text="resiz")) == 3
        assert len(await engine.tasks(text="mail", state="failed")) == 2
        assert await engine.tasks(text="%") == []  # LIKE wildcards are literal
        await engine.pause("images")
        await engine.pause("emails")
        assert await engine.retry_all("failed", queue="images") == 3
        assert engine.snapshot().counts[TaskState.FAILED] == 2
        assert await engine.retry_all(handler="mail.send") == 2
        assert engine.snapshot().counts[TaskState.QUEUED] == 5
        with pytest.raises(ValueError, match="only failed or cancelled tasks can be retried"):
            await engine.retry_all("succeeded")


async def test_a_start_that_fails_after_the_store_opened_leaves_nothing_running(
    make_engine: EngineFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(workers=2)

    @engine.periodic(every=60)
    async def tick() -> None:
        return None

    async def broken(*_: object) -> list[str]:
        raise StoreError("disk I/O error while saving the schedules")

    store = engine._store
    monkeypatch.setattr(store, "sync_schedules", broken)
    with pytest.raises(StoreError, match="disk I/O error"):
        await engine.start()
    assert not engine.running
    assert not [t for t in threading.enumerate() if t.name.startswith("taskdeck-writer")]
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("taskdeck-")]

    monkeypatch.undo()  # the fault is gone: the same engine starts and works
    await engine.start()
    assert engine.running
    task_id = await tick.enqueue()
    assert (await engine.wait(task_id, timeout=5)).state == "succeeded"
