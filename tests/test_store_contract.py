"""The Store contract, once, for every backend.

Each test here runs against every store behind :func:`engine.store.open_store`: the
SQLite file always, PostgreSQL once ``engine.store.postgres`` exists (the ``pg_url``
fixture gives each test a fresh schema; a server that is down fails the test, it
never skips it). The tests call the :class:`~engine.store.base.Store` protocol
directly, with a fake clock the test moves, and expect exactly what the SQLite store
does today. Nothing here touches SQL: backend-specific checks (schema guards, query
plans) live in ``test_store_sqlite.py`` and the PostgreSQL store's own tests.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from engine.codec import Codec, generate_key
from engine.errors import InvalidTransition, StoreError, TaskNotFound
from engine.limits import FlowLimits, Rate
from engine.model import TaskRecord, TaskState
from engine.schedule import next_run
from engine.store import open_store
from engine.store.base import (
    WAITING_RUN_AT,
    WEBHOOK_HANDLER,
    WEBHOOK_QUEUE,
    WEBHOOK_RETRIES,
    ClaimedTask,
    Completion,
    Expired,
    NewTask,
    Store,
    StoreCounts,
    StoredSchedule,
    TaskFilter,
)

START = 1_750_000_000.0
LEASE = 30.0
CODEC = Codec()
ALL = TaskFilter(limit=10_000)
BACKENDS = ("sqlite", "postgres")


class FakeClock:
    """The store's clock: time moves only when a test says so."""

    def __init__(self, start: float = START) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


@dataclass
class Backend:
    """How to open (and reopen) a store of one backend on one fresh database."""

    name: str
    url: str | Path
    clock: FakeClock

    def make(self, codec: Codec | None = None) -> Store:
        return open_store(self.url, codec or Codec(), self.clock)


def postgres_built() -> bool:
    try:
        importlib.import_module("engine.store.postgres")
    except ModuleNotFoundError as exc:
        if exc.name == "engine.store.postgres":
            return False
        raise  # the module exists but is broken: fail, never skip
    return True


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> Backend:
    if request.param == "sqlite":
        return Backend("sqlite", tmp_path / "s.db", clock)
    if not postgres_built():
        pytest.skip("PostgreSQL store not built yet")
    return Backend("postgres", request.getfixturevalue("pg_url"), clock)


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    opened = backend.make()
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


# -- helpers -----------------------------------------------------------------------


def new(
    handler: str = "h",
    queue: str = "default",
    priority: int = 5,
    payload: Any = None,
    retries: int = 3,
    run_at: float | None = None,
    **options: Any,
) -> NewTask:
    body = CODEC.encode({} if payload is None else payload)
    return NewTask(handler, queue, priority, body, retries, run_at, **options)


def done(
    claimed: ClaimedTask,
    state: TaskState,
    at: float,
    owner: str = "w1",
    attempt: int | None = None,
    **fields: Any,
) -> Completion:
    """The completion a worker sends for ``claimed`` (queue and follow-ups as claimed)."""
    return Completion(
        claimed.id,
        claimed.attempts if attempt is None else attempt,
        owner,
        state,
        at,
        handler=claimed.handler,
        queue=claimed.queue,
        workflow_id=claimed.workflow_id,
        webhook=claimed.webhook,
        **fields,
    )


async def claim(
    store: Store, owner: str = "w1", limit: int = 100, handlers: Sequence[str] = ("h",)
) -> list[ClaimedTask]:
    return await store.claim(owner, limit, list(handlers), LEASE)


async def finish(
    store: Store, clock: FakeClock, claimed: ClaimedTask, state: TaskState, **fields: Any
) -> None:
    report = await store.complete([done(claimed, state, clock.now, **fields)])
    assert len(report.applied) == 1 and not report.stale


async def run_one(
    store: Store, clock: FakeClock, task: NewTask, state: TaskState, **fields: Any
) -> str:
    """Enqueue ``task``, claim it (alone) and complete it in ``state``."""
    (tid,) = await store.enqueue([task])
    got = await store.claim("w1", 1, [task.handler], LEASE)
    assert [c.id for c in got] == [int(tid)]
    await finish(store, clock, got[0], state, **fields)
    return tid


async def state_of(store: Store, tid: str | int) -> TaskState:
    return (await store.get(int(tid))).state


def ids(records: Iterable[TaskRecord]) -> list[str]:
    return [r.id for r in records]


def _nonzero(counts: StoreCounts) -> dict[str, dict[TaskState, int]]:
    out = {q: {s: n for s, n in per.items() if n} for q, per in counts.by_queue.items()}
    return {q: per for q, per in out.items() if per}


async def check_counts(store: Store) -> StoreCounts:
    """``last_counts`` (as of this process's latest write) and a fresh ``counts()`` both
    equal the tasks actually stored."""
    truth: dict[str, dict[TaskState, int]] = {}
    for r in await store.tasks(ALL):
        per = truth.setdefault(r.queue, {})
        per[r.state] = per.get(r.state, 0) + 1
    assert _nonzero(store.last_counts) == truth, "last_counts"
    fresh = await store.counts()
    assert _nonzero(fresh) == truth, "counts()"
    assert store.last_counts.paused == fresh.paused
    return fresh


# -- enqueue -------------------------------------------------------------------------


async def test_enqueue_returns_increasing_string_ids_in_order(store: Store) -> None:
    first = await store.enqueue([new(payload={"n": i}) for i in range(3)])
    second = await store.enqueue([new(payload={"n": 3})])
    assert await store.enqueue([]) == []
    everything = first + second
    assert all(isinstance(t, str) and t.isdigit() for t in everything)
    numbers = [int(t) for t in everything]
    assert numbers == sorted(numbers) and len(set(numbers)) == 4
    for i, tid in enumerate(everything):
        rec = await store.get(int(tid))
        assert rec.id == tid and rec.payload == {"n": i}
    await check_counts(store)


async def test_enqueue_sets_every_field(store: Store, clock: FakeClock) -> None:
    (tid,) = await store.enqueue([new("mail.send", "mail", 7, {"to": "ada"}, retries=2)])
    rec = await store.get(int(tid))
    assert (rec.handler, rec.queue, rec.priority, rec.state) == (
        "mail.send",
        "mail",
        7,
        TaskState.QUEUED,
    )
    assert (rec.attempts, rec.max_retries, rec.payload) == (0, 2, {"to": "ada"})
    assert rec.result is None and rec.error is None and rec.progress is None
    assert rec.created_at == clock.now
    assert rec.started_at is None and rec.finished_at is None and rec.worker is None
    assert rec.unique_key is None and rec.webhook is None and rec.workflow_id is None
    assert not rec.waiting


async def test_enqueue_future_run_at_is_scheduled_past_is_queued(
    store: Store, clock: FakeClock
) -> None:
    later, past = clock.now + 60, clock.now - 5
    tids = await store.enqueue([new(run_at=later), new(run_at=past), new(run_at=clock.now)])
    records = [await store.get(int(t)) for t in tids]
    assert [r.state for r in records] == [TaskState.SCHEDULED, TaskState.QUEUED, TaskState.QUEUED]
    assert records[0].run_at == later
    counts = await check_counts(store)
    assert counts.by_queue["default"][TaskState.SCHEDULED] == 1
    assert counts.by_queue["default"][TaskState.QUEUED] == 2
    assert counts.depth("default") == 2


@pytest.mark.parametrize("path", ["bulk", "one_by_one"])
async def test_enqueue_is_all_or_nothing(store: Store, path: str) -> None:
    await store.enqueue([new(queue="before")])
    extra: dict[str, Any] = {"unique_key": "k1"} if path == "one_by_one" else {}
    batch = [new(), new(**extra), new(priority=42)]  # 42: outside 0..9, refused
    with pytest.raises(StoreError):
        await store.enqueue(batch)
    assert [r.queue for r in await store.tasks(ALL)] == ["before"]
    await check_counts(store)
    # the refused batch left nothing behind: the unique key is still free
    (tid,) = await store.enqueue([new(unique_key="k1")])
    assert not getattr(tid, "deduplicated", False)


# -- claim ---------------------------------------------------------------------------


async def test_claim_takes_priority_desc_then_fifo_up_to_limit(
    store: Store, clock: FakeClock
) -> None:
    prios = [5, 9, 5, 1, 9, 7]
    tids = await store.enqueue([new(priority=p, queue="ab"[i % 2]) for i, p in enumerate(prios)])
    order = sorted(range(len(prios)), key=lambda i: (-prios[i], i))
    got = await claim(store, limit=4)
    assert [c.id for c in got] == [int(tids[i]) for i in order[:4]]
    rest = await claim(store, limit=10)
    assert [c.id for c in rest] == [int(tids[i]) for i in order[4:]]
    assert await claim(store) == []
    assert await store.claim("w1", 0, ["h"], LEASE) == []
    await check_counts(store)


async def test_claim_only_takes_listed_handlers(store: Store) -> None:
    a, b, c = await store.enqueue([new("x"), new("y"), new("z")])
    got = await claim(store, handlers=["x", "z", "unknown"])
    assert sorted(t.id for t in got) == [int(a), int(c)]
    assert await claim(store, handlers=[]) == []
    assert await state_of(store, b) == TaskState.QUEUED


async def test_claim_skips_paused_queues(store: Store) -> None:
    assert await store.set_paused("slow", True) is True
    assert await store.set_paused("slow", True) is False
    slow, fast = await store.enqueue([new(queue="slow", priority=9), new(queue="fast")])
    counts = await check_counts(store)
    assert counts.paused == frozenset({"slow"})
    assert [c.id for c in await claim(store)] == [int(fast)]
    assert await claim(store) == []
    assert await store.set_paused("slow", False) is True
    assert await store.set_paused("slow", False) is False
    assert (await check_counts(store)).paused == frozenset()
    assert [c.id for c in await claim(store)] == [int(slow)]


async def test_claim_counts_an_attempt_and_takes_a_lease(store: Store, clock: FakeClock) -> None:
    created = clock.now
    (tid,) = await store.enqueue([new("h", "q", 6, {"a": 1}, retries=2)])
    clock.advance(5)
    (c,) = await claim(store, owner="node-a")
    assert (c.id, c.handler, c.queue, c.priority) == (int(tid), "h", "q", 6)
    assert (c.attempts, c.max_retries) == (1, 2)
    assert CODEC.decode(c.payload) == {"a": 1}
    assert c.created_at == created and c.started_at == clock.now
    assert c.workflow_id is None and c.webhook is None
    rec = await store.get(c.id)
    assert rec.state == TaskState.RUNNING and rec.worker == "node-a"
    assert rec.attempts == 1 and rec.started_at == clock.now
    # the lease holds for lease_ttl: nothing to rescue before it runs out
    clock.advance(LEASE - 1)
    assert await store.rescue("someone-else") == []
    await check_counts(store)


async def test_enqueue_and_claim_hands_over_only_when_nothing_waits(
    store: Store, clock: FakeClock
) -> None:
    tid, claimed = await store.enqueue_and_claim(new(queue="a"), "w1", LEASE)
    assert claimed is not None and claimed.id == int(tid) and claimed.attempts == 1
    assert claimed.started_at == clock.now
    rec = await store.get(int(tid))
    assert (rec.state, rec.worker, rec.attempts) == (TaskState.RUNNING, "w1", 1)
    # a running task does not count as waiting
    tid2, claimed2 = await store.enqueue_and_claim(new(queue="b"), "w2", LEASE)
    assert claimed2 is not None and claimed2.id == int(tid2)
    # a queued task elsewhere does: the new one waits its turn
    (waiting,) = await store.enqueue([new(queue="c")])
    tid3, claimed3 = await store.enqueue_and_claim(new(queue="a", priority=9), "w1", LEASE)
    assert claimed3 is None and await state_of(store, tid3) == TaskState.QUEUED
    await check_counts(store)
    assert [c.id for c in await claim(store)] == [int(tid3), int(waiting)]


async def test_enqueue_and_claim_ignores_paused_queues(store: Store, clock: FakeClock) -> None:
    await store.set_paused("held", True)
    await store.enqueue([new(queue="held")])
    # tasks in a paused queue do not wait to be claimed: the new task is handed over
    tid, claimed = await store.enqueue_and_claim(new(queue="a"), "w1", LEASE)
    assert claimed is not None and claimed.id == int(tid)
    # but a task for a paused queue is never handed over
    tid2, claimed2 = await store.enqueue_and_claim(new(queue="held"), "w1", LEASE)
    assert claimed2 is None and await state_of(store, tid2) == TaskState.QUEUED
    # nor is a task due later
    tid3, claimed3 = await store.enqueue_and_claim(new(run_at=clock.now + 9), "w1", LEASE)
    assert claimed3 is None and await state_of(store, tid3) == TaskState.SCHEDULED
    await check_counts(store)


# -- complete ------------------------------------------------------------------------


async def test_complete_succeeded_stores_result(store: Store, clock: FakeClock) -> None:
    (tid,) = await store.enqueue([new()])
    (c,) = await claim(store)
    clock.advance(2)
    report = await store.complete(
        [
            done(
                c,
                TaskState.SUCCEEDED,
                clock.now,
                result=CODEC.encode({"ok": True}),
                worker="w1/0",
                progress=1.0,
                progress_message="all done",
            )
        ]
    )
    assert [x.task_id for x in report.applied] == [c.id] and report.stale == []
    rec = await store.get(int(tid))
    assert rec.state == TaskState.SUCCEEDED and rec.result == {"ok": True}
    assert rec.finished_at == clock.now and rec.error is None and rec.attempts == 1
    assert rec.worker == "w1/0" and rec.progress == 1.0 and rec.progress_message == "all done"
    assert await store.complete([]) is not None
    await check_counts(store)


async def test_complete_failed_stores_error(store: Store, clock: FakeClock) -> None:
    (tid,) = await store.enqueue([new(retries=0)])
    (c,) = await claim(store)
    error = CODEC.seal("Traceback …\nValueError: bad input")
    await finish(store, clock, c, TaskState.FAILED, error=error)
    rec = await store.get(int(tid))
    assert rec.state == TaskState.FAILED and rec.error == "Traceback …\nValueError: bad input"
    assert rec.finished_at == clock.now and rec.result is None
    await check_counts(store)


async def test_complete_scheduled_retries_at_run_at(store: Store, clock: FakeClock) -> None:
    (tid,) = await store.enqueue([new()])
    (c,) = await claim(store)
    due = clock.now + 10
    await finish(store, clock, c, TaskState.SCHEDULED, run_at=due, error=CODEC.seal("boom"))
    rec = await store.get(int(tid))
    assert (rec.state, rec.run_at, rec.attempts) == (TaskState.SCHEDULED, due, 1)
    assert rec.finished_at is None and rec.error == "boom"
    assert await claim(store) == []
    assert await store.promote_due() == ([], due)
    clock.advance(10)
    assert await store.promote_due() == ([(int(tid), "default")], None)
    (again,) = await claim(store)
    assert again.id == int(tid) and again.attempts == 2
    await check_counts(store)


async def test_complete_queued_retries_now(store: Store, clock: FakeClock) -> None:
    (tid,) = await store.enqueue([new()])
    (c,) = await claim(store)
    await finish(store, clock, c, TaskState.QUEUED, run_at=clock.now)
    rec = await store.get(int(tid))
    assert (rec.state, rec.attempts, rec.finished_at) == (TaskState.QUEUED, 1, None)
    (again,) = await claim(store)
    assert again.id == int(tid) and again.attempts == 2


async def test_complete_release_gives_the_attempt_back(store: Store, clock: FakeClock) -> None:
    (tid,) = await store.enqueue([new(retries=0)])
    (c,) = await claim(store)
    await finish(store, clock, c, TaskState.QUEUED, run_at=clock.now, release=True, note="stop")
    rec = await store.get(int(tid))
    assert (rec.state, rec.attempts) == (TaskState.QUEUED, 0)
    (again,) = await claim(store)
    assert again.attempts == 1  # retries=0: the only attempt is still there
    await check_counts(store)


async def test_complete_is_fenced_by_owner_and_attempt(store: Store, clock: FakeClock) -> None:
    (tid,) = await store.enqueue([new()])
    (c,) = await claim(store, owner="w1")
    wrong_owner = done(c, TaskState.SUCCEEDED, clock.now, owner="w2", result="1")
    old_attempt = done(c, TaskState.FAILED, clock.now, attempt=c.attempts - 1)
    future_attempt = done(c, TaskState.FAILED, clock.now, attempt=c.attempts + 1)
    report = await store.complete([wrong_owner, old_attempt, future_attempt])
    assert report.applied == [] and report.stale == [wrong_owner, old_attempt, future_attempt]
    rec = await store.get(int(tid))
    assert (rec.state, rec.worker, rec.attempts, rec.result) == (TaskState.RUNNING, "w1", 1, None)
    # mixed with a live one: only the live one applies
    live = done(c, TaskState.SUCCEEDED, clock.now, result="2")
    report = await store.complete([wrong_owner, live])
    assert report.applied == [live] and report.stale == [wrong_owner]
    assert (await store.get(int(tid))).result == 2
    # a second completion of the same attempt is stale too
    report = await store.complete([done(c, TaskState.FAILED, clock.now)])
    assert report.applied == [] and len(report.stale) == 1
    assert await state_of(store, tid) == TaskState.SUCCEEDED
    await check_counts(store)


async def test_completion_after_a_rescue_and_reclaim_is_stale(
    store: Store, clock: FakeClock
) -> None:
    (tid,) = await store.enqueue([new()])
    (first,) = await claim(store, owner="w1")
    clock.advance(LEASE + 1)
    assert [r.id for r in await store.rescue("w2")] == [int(tid)]
    (second,) = await claim(store, owner="w2")
    assert second.attempts == 2
    # the lost worker comes back: same owner name would not help, the attempt is old
    report = await store.complete([done(first, TaskState.SUCCEEDED, clock.now, result="1")])
    assert report.applied == [] and len(report.stale) == 1
    rec = await store.get(int(tid))
    assert (rec.state, rec.worker, rec.result) == (TaskState.RUNNING, "w2", None)
    await finish(store, clock, second, TaskState.SUCCEEDED, owner="w2", result="2")
    assert (await store.get(int(tid))).result == 2


# -- leases --------------------------------------------------------------------------


async def test_renew_leases_extends_and_returns_what_is_held(
    store: Store, clock: FakeClock
) -> None:
    tids = await store.enqueue([new() for _ in range(3)])
    mine = await claim(store, owner="w1", limit=2)
    (theirs,) = await claim(store, owner="w2")
    await finish(store, clock, mine[1], TaskState.SUCCEEDED)
    assert await store.renew_leases("w1", LEASE) == {mine[0].id}
    assert await store.renew_leases("nobody", LEASE) == set()
    clock.advance(LEASE - 1)
    assert await store.renew_leases("w1", LEASE) == {mine[0].id}
    clock.advance(2)  # past the first lease, within the renewed one
    rescued = await store.rescue("w3")
    assert [r.id for r in rescued] == [theirs.id]
    assert await state_of(store, mine[0].id) == TaskState.RUNNING
    assert await store.renew_leases("w2", LEASE) == set()  # lost: w2 learns it here
    assert int(tids[2]) == theirs.id
    await check_counts(store)


async def test_rescue_requeues_expired_leases_counting_the_attempt(
    store: Store, clock: FakeClock
) -> None:
    (tid,) = await store.enqueue([new("h", "q", retries=2)])
    await claim(store, owner="w1")
    clock.advance(LEASE)
    assert await store.rescue("w2") == []  # at expiry, not yet past it
    clock.advance(1)
    (r,) = await store.rescue("w2")
    assert (r.id, r.handler, r.queue, r.state) == (int(tid), "h", "q", TaskState.QUEUED)
    assert (r.attempts, r.max_retries, r.owner) == (1, 2, "w1")
    rec = await store.get(int(tid))
    assert (rec.state, rec.attempts, rec.finished_at) == (TaskState.QUEUED, 1, None)
    assert rec.error  # says the worker was lost
    last = rec.timeline[-1]
    assert (last.state, last.attempt, last.at) == (TaskState.QUEUED, 1, clock.now)
    assert await store.rescue("w2") == []
    await check_counts(store)
    (again,) = await claim(store, owner="w2")
    assert again.attempts == 2


async def test_rescue_fails_a_task_out_of_attempts(store: Store, clock: FakeClock) -> None:
    (tid,) = await store.enqueue([new(retries=0)])
    await claim(store, owner="w1")
    clock.advance(LEASE + 1)
    (r,) = await store.rescue("w2")
    assert r.state == TaskState.FAILED and r.attempts == 1
    rec = await store.get(int(tid))
    assert rec.state == TaskState.FAILED and rec.finished_at == clock.now and rec.error
    await check_counts(store)


async def test_rescue_leaves_the_excluded_owner_alone(store: Store, clock: FakeClock) -> None:
    await store.enqueue([new(), new()])
    (a,) = await claim(store, owner="me", limit=1)
    (b,) = await claim(store, owner="other", limit=1)
    clock.advance(LEASE + 1)
    assert [r.id for r in await store.rescue("me")] == [b.id]
    assert await state_of(store, a.id) == TaskState.RUNNING
    assert [r.id for r in await store.rescue("other")] == [a.id]


# -- scheduled -> queued ---------------------------------------------------------------


async def test_promote_due_moves_only_due_tasks(store: Store, clock: FakeClock) -> None:
    t0 = clock.now
    late, soon = await store.enqueue(
        [new(queue="x", run_at=t0 + 20), new(queue="y", run_at=t0 + 10)]
    )
    assert await store.promote_due() == ([], t0 + 10)
    clock.advance(10)
    assert await store.promote_due() == ([(int(soon), "y")], t0 + 20)
    assert await state_of(store, late) == TaskState.SCHEDULED
    clock.advance(15)
    assert await store.promote_due() == ([(int(late), "x")], None)
    assert await store.promote_due() == ([], None)
    await check_counts(store)
    # once queued, FIFO is by enqueue order (id), not by due time
    assert [c.id for c in await claim(store)] == [int(late), int(soon)]


# -- operator commands -------------------------------------------------------------------


async def test_cancel_returns_the_previous_state(store: Store, clock: FakeClock) -> None:
    queued, scheduled, running = await store.enqueue(
        [new(), new(run_at=clock.now + 60), new(priority=9)]
    )
    (c,) = await claim(store, limit=1)
    assert c.id == int(running)
    clock.advance(1)
    assert await store.cancel(int(queued), "op", "not needed") == TaskState.QUEUED
    assert await store.cancel(int(scheduled), "op", "x") == TaskState.SCHEDULED
    assert await store.cancel(int(running), "op", "x") == TaskState.RUNNING
    for tid in (queued, scheduled, running):
        rec = await store.get(int(tid))
        assert rec.state == TaskState.CANCELLED and rec.finished_at == clock.now
    last = (await store.get(int(queued))).timeline[-1]
    assert (last.state, last.by, last.note) == (TaskState.CANCELLED, "op", "not needed")
    # the cancelled worker's late completion is stale and changes nothing
    report = await store.complete([done(c, TaskState.SUCCEEDED, clock.now, result="1")])
    assert report.applied == [] and len(report.stale) == 1
    assert await store.renew_leases("w1", LEASE) == set()
    clock.advance(LEASE + 1)
    assert await store.rescue("w2") == []
    assert await state_of(store, running) == TaskState.CANCELLED
    await check_counts(store)


async def test_cancel_refuses_finished_and_unknown_tasks(store: Store, clock: FakeClock) -> None:
    tid = await run_one(store, clock, new(), TaskState.SUCCEEDED)
    with pytest.raises(InvalidTransition, match=rf"task {tid} already succeeded"):
        await store.cancel(int(tid), "op", "x")
    (other,) = await store.enqueue([new()])
    await store.cancel(int(other), "op", "x")
    with pytest.raises(InvalidTransition, match=rf"task {other} already cancelled"):
        await store.cancel(int(other), "op", "x")
    with pytest.raises(TaskNotFound, match="no task with id '999999'"):
        await store.cancel(999_999, "op", "x")
    await check_counts(store)


async def test_reprioritize_queued_and_scheduled_only(store: Store, clock: FakeClock) -> None:
    a, b, s, r = await store.enqueue(
        [new(priority=5), new(priority=5), new(run_at=clock.now + 9), new(priority=9)]
    )
    (c,) = await claim(store, limit=1)
    assert c.id == int(r)
    assert await store.reprioritize(int(b), 8, "op") == 5
    assert await store.reprioritize(int(b), 8, "op") == 8  # no change: the old one back
    assert await store.reprioritize(int(s), 1, "op") == 5
    assert (await store.get(int(b))).priority == 8
    assert (await store.get(int(s))).priority == 1
    with pytest.raises(InvalidTransition, match="only queued or scheduled"):
        await store.reprioritize(int(r), 1, "op")
    with pytest.raises(TaskNotFound):
        await store.reprioritize(999_999, 1, "op")
    assert [c.id for c in await claim(store)] == [int(b), int(a)]
    assert (await store.get(int(r))).priority == 9
    await check_counts(store)


async def test_retry_requeues_failed_and_cancelled_with_a_fresh_budget(
    store: Store, clock: FakeClock
) -> None:
    (tid,) = await store.enqueue([new(retries=1)])
    (c,) = await claim(store)
    await finish(store, clock, c, TaskState.QUEUED, run_at=clock.now, error=CODEC.seal("e1"))
    (c,) = await claim(store)
    await finish(store, clock, c, TaskState.FAILED, error=CODEC.seal("e2"), result="0")
    assert await store.retry(int(tid), "op", None) == TaskState.FAILED
    rec = await store.get(int(tid))
    assert (rec.state, rec.attempts, rec.finished_at, rec.result) == (
        TaskState.QUEUED,
        2,
        None,
        None,
    )
    assert rec.max_retries == rec.attempts + 1  # the task's own retries=1, afresh
    (c,) = await claim(store)
    assert c.attempts == 3
    clock.advance(LEASE + 1)
    assert [r.state for r in await store.rescue("w2")] == [TaskState.QUEUED]  # budget left
    (c,) = await claim(store)
    await store.cancel(int(tid), "op", "x")
    assert await store.retry(int(tid), "op", 5) == TaskState.CANCELLED
    rec = await store.get(int(tid))
    assert rec.state == TaskState.QUEUED and rec.max_retries == rec.attempts + 5
    await check_counts(store)


async def test_retry_refuses_active_succeeded_and_unknown_tasks(
    store: Store, clock: FakeClock
) -> None:
    ok = await run_one(store, clock, new(), TaskState.SUCCEEDED)
    queued, running = await store.enqueue([new(queue="q"), new()])
    await claim(store, limit=1)
    for tid in (ok, queued, running):
        with pytest.raises(InvalidTransition, match="only failed or cancelled"):
            await store.retry(int(tid), "op", None)
    with pytest.raises(TaskNotFound):
        await store.retry(999_999, "op", None)
    await check_counts(store)


async def test_retry_where_and_purge_filter_and_count(store: Store, clock: FakeClock) -> None:
    for queue, handler, state in [
        ("a", "x", TaskState.FAILED),
        ("a", "y", TaskState.FAILED),
        ("b", "x", TaskState.FAILED),
        ("b", "x", TaskState.SUCCEEDED),
        ("a", "x", TaskState.SUCCEEDED),
    ]:
        await run_one(store, clock, new(handler, queue, retries=0), state)
    (cancelled,) = await store.enqueue([new("x", "a")])
    await store.cancel(int(cancelled), "op", "x")
    await store.enqueue([new("x", "a")])  # stays queued throughout
    F, C, S, Q = TaskState.FAILED, TaskState.CANCELLED, TaskState.SUCCEEDED, TaskState.QUEUED

    assert await store.retry_where([F], "a", "x", "op") == 1
    await check_counts(store)
    assert await store.retry_where([F, C], None, "x", "op") == 2  # b/x failed, a/x cancelled
    assert await store.retry_where([F, C], None, None, "op") == 1  # a/y
    assert await store.retry_where([F, C], None, None, "op") == 0
    counts = await check_counts(store)
    assert counts.totals()[Q] == 5 and counts.totals()[S] == 2

    await run_one(store, clock, new("w", "b", retries=0), F)
    assert await store.purge([S], "b", None, None) == 1
    assert await store.purge([S, F, Q], None, "w", None) == 1
    assert await store.purge([Q, TaskState.RUNNING, TaskState.SCHEDULED], None, None, None) == 0
    remaining = await store.tasks(TaskFilter(state=S))
    assert len(remaining) == 1
    assert await store.purge([S], None, None, [int(remaining[0].id) + 1000]) == 0
    assert await store.purge([S], None, None, []) == 0  # no ids: nothing, not everything
    assert await store.purge([], None, None, None) == 0
    assert await store.retry_where([], None, None, "op") == 0
    assert await store.purge([S], None, None, [int(remaining[0].id)]) == 1
    with pytest.raises(TaskNotFound):
        await store.get(int(remaining[0].id))
    assert {r.state for r in await store.tasks(ALL)} == {Q}
    await check_counts(store)


async def test_retry_where_leaves_active_tasks_alone(store: Store) -> None:
    (queued, running) = await store.enqueue([new(), new(priority=9)])
    (c,) = await claim(store, limit=1)
    assert await store.retry_where([TaskState.QUEUED, TaskState.RUNNING], None, None, "op") == 0
    assert await state_of(store, queued) == TaskState.QUEUED
    rec = await store.get(c.id)
    assert (rec.state, rec.worker) == (TaskState.RUNNING, "w1")
    assert await store.renew_leases("w1", LEASE) == {int(running)}


async def test_retry_where_leaves_scheduled_tasks_alone(store: Store, clock: FakeClock) -> None:
    (tid,) = await store.enqueue([new(run_at=clock.now + 50)])
    assert await store.retry_where([TaskState.SCHEDULED], None, None, "op") == 0
    rec = await store.get(int(tid))
    assert (rec.state, rec.run_at) == (TaskState.SCHEDULED, clock.now + 50)


async def test_retry_where_leaves_succeeded_tasks_alone(store: Store, clock: FakeClock) -> None:
    tid = await run_one(store, clock, new(), TaskState.SUCCEEDED, result="1")
    assert await store.retry_where([TaskState.SUCCEEDED], None, None, "op") == 0
    rec = await store.get(int(tid))
    assert (rec.state, rec.result) == (TaskState.SUCCEEDED, 1)


async def test_purge_expired_by_ttl(store: Store, clock: FakeClock) -> None:
    t0 = clock.now
    ok = await run_one(store, clock, new("h", "q"), TaskState.SUCCEEDED)
    bad = await run_one(store, clock, new("h", "q", retries=0), TaskState.FAILED)
    (gone,) = await store.enqueue([new("h", "r")])
    await store.cancel(int(gone), "op", "x")
    (live,) = await store.enqueue([new()])
    clock.advance(100)
    expired = await store.purge_expired(result_ttl=50, failed_ttl=200, limit=100)
    assert expired == [Expired(ok, "h", "q", TaskState.SUCCEEDED, t0)]
    assert await store.purge_expired(result_ttl=50, failed_ttl=200, limit=100) == []
    clock.advance(150)
    first = await store.purge_expired(result_ttl=50, failed_ttl=200, limit=1)
    rest = await store.purge_expired(result_ttl=50, failed_ttl=200, limit=100)
    assert len(first) == 1
    assert {(e.id, e.queue, e.state, e.finished_at) for e in first + rest} == {
        (bad, "q", TaskState.FAILED, t0),
        (gone, "r", TaskState.CANCELLED, t0),
    }
    assert ids(await store.tasks(ALL)) == [live]
    await check_counts(store)


async def test_save_progress_is_visible_to_get(store: Store) -> None:
    await store.enqueue([new()])
    (c,) = await claim(store, owner="w1")
    await store.save_progress([(c.id, "w1", 0.25, "a quarter")])
    rec = await store.get(c.id)
    assert (rec.progress, rec.progress_message) == (0.25, "a quarter")
    await store.save_progress([(c.id, "w2", 0.9, "not the owner")])  # ignored
    await store.save_progress([])
    rec = await store.get(c.id)
    assert (rec.progress, rec.progress_message) == (0.25, "a quarter")
    assert (await store.tasks(TaskFilter(state=TaskState.RUNNING)))[0].progress == 0.25


# -- reads -----------------------------------------------------------------------------


async def test_get_shows_the_timeline_in_order(store: Store, clock: FakeClock) -> None:
    t0 = clock.now
    (tid,) = await store.enqueue([new(retries=1)])
    clock.advance(1)
    (c,) = await claim(store, owner="w1")
    clock.advance(1)
    await finish(store, clock, c, TaskState.SCHEDULED, run_at=t0 + 5, worker="w1/3")
    clock.advance(3)
    await store.promote_due()
    clock.advance(1)
    (c,) = await claim(store, owner="w2")
    clock.advance(1)
    await finish(store, clock, c, TaskState.SUCCEEDED, owner="w2", worker="w2/0", result="1")
    rec = await store.get(int(tid))
    steps = [(e.state, e.attempt, e.at) for e in rec.timeline]
    assert steps == [
        (TaskState.QUEUED, 0, t0),
        (TaskState.RUNNING, 1, t0 + 1),
        (TaskState.SCHEDULED, 1, t0 + 2),
        (TaskState.QUEUED, 1, t0 + 5),
        (TaskState.RUNNING, 2, t0 + 6),
        (TaskState.SUCCEEDED, 2, t0 + 7),
    ]
    assert rec.timeline[0].note == "created"
    assert [rec.timeline[i].by for i in (1, 2, 4, 5)] == ["w1", "w1/3", "w2", "w2/0"]

    (later,) = await store.enqueue([new(run_at=clock.now + 60)])
    await store.cancel(int(later), "ops", "why")
    timeline = (await store.get(int(later))).timeline
    assert [(e.state, e.note) for e in timeline] == [
        (TaskState.SCHEDULED, "created"),
        (TaskState.CANCELLED, "why"),
    ]
    with pytest.raises(TaskNotFound, match="no task with id '999999'"):
        await store.get(999_999)


async def _mixed(store: Store, clock: FakeClock) -> dict[str, list[str]]:
    """Tasks in every state over two queues and handlers, spread over time."""
    out: dict[str, list[str]] = {}
    out["queued"] = await store.enqueue(
        [new("h" if i % 3 else "g", "ab"[i % 2], priority=(i * 7) % 10) for i in range(12)]
    )
    out["scheduled"] = await store.enqueue(
        [new(queue="ab"[i % 2], run_at=clock.now + 100 - 10 * i) for i in range(4)]
    )
    running: list[str] = []
    for _ in range(4):
        clock.advance(1)
        running += [str(c.id) for c in await claim(store, limit=1, handlers=["g"])]
    out["running"] = running
    finished = []
    S, F = TaskState.SUCCEEDED, TaskState.FAILED
    for i, state in enumerate([S, F, S, S, F, F]):
        clock.advance(0 if i in (3, 5) else 1)  # two pairs finish at the same time
        finished.append(await run_one(store, clock, new("f", "ab"[i % 2], retries=0), state))
    out["finished"] = finished
    return out


async def test_tasks_order_per_state(store: Store, clock: FakeClock) -> None:
    await _mixed(store, clock)
    everything = await store.tasks(ALL)
    assert [int(t) for t in ids(everything)] == sorted(
        (int(r.id) for r in everything), reverse=True
    )

    def by_state(state: TaskState) -> list[TaskRecord]:
        return [r for r in everything if r.state == state]

    queued = await store.tasks(TaskFilter(TaskState.QUEUED))
    assert ids(queued) == ids(
        sorted(by_state(TaskState.QUEUED), key=lambda r: (-r.priority, int(r.id)))
    )
    scheduled = await store.tasks(TaskFilter(TaskState.SCHEDULED))
    assert [r.run_at for r in scheduled] == sorted(r.run_at or 0 for r in scheduled)
    assert len(scheduled) == 4
    running = await store.tasks(TaskFilter(TaskState.RUNNING))
    assert ids(running) == ids(sorted(by_state(TaskState.RUNNING), key=lambda r: r.started_at or 0))
    assert len(running) == 4
    for state in (TaskState.SUCCEEDED, TaskState.FAILED):
        got = await store.tasks(TaskFilter(state))
        assert ids(got) == ids(
            sorted(by_state(state), key=lambda r: (-(r.finished_at or 0), -int(r.id)))
        )


async def test_tasks_windows_and_filters(store: Store, clock: FakeClock) -> None:
    await _mixed(store, clock)
    full = await store.tasks(TaskFilter(TaskState.QUEUED))
    assert ids(await store.tasks(TaskFilter(TaskState.QUEUED, limit=3, offset=2))) == ids(full[2:5])
    assert ids(await store.tasks(TaskFilter(TaskState.QUEUED, limit=50, offset=7))) == ids(full[7:])
    assert await store.tasks(TaskFilter(TaskState.QUEUED, offset=100)) == []
    assert await store.tasks(TaskFilter(TaskState.QUEUED, limit=0)) == []
    in_a = await store.tasks(TaskFilter(TaskState.QUEUED, queue="a"))
    assert ids(in_a) == [r.id for r in full if r.queue == "a"]
    of_h = await store.tasks(TaskFilter(TaskState.QUEUED, handler="h"))
    assert ids(of_h) == [r.id for r in full if r.handler == "h"]
    everything = await store.tasks(ALL)
    assert ids(await store.tasks(TaskFilter(queue="b"))) == [
        r.id for r in everything if r.queue == "b"
    ]
    one = everything[-1].id
    assert one in ids(await store.tasks(TaskFilter(id_prefix=one)))
    prefix = everything[0].id[:-1]
    assert ids(await store.tasks(TaskFilter(id_prefix=prefix))) == [
        r.id for r in everything if r.id.startswith(prefix)
    ]
    assert await store.tasks(TaskFilter(id_prefix="x1")) == []
    assert ids(await store.tasks(TaskFilter(text="f"))) == [
        r.id for r in everything if "f" in r.handler or "f" in r.queue
    ]
    assert await store.tasks(TaskFilter(text="nothing-like-it")) == []


async def test_tasks_text_filter(store: Store) -> None:
    a, b, c, _ = await store.enqueue(
        [new("mail.send", "emails"), new("a_b", "q"), new("axb", "q"), new("h", "Reports")]
    )
    assert ids(await store.tasks(TaskFilter(text="mail"))) == [a]
    assert ids(await store.tasks(TaskFilter(text="ema"))) == [a]  # the queue name
    assert ids(await store.tasks(TaskFilter(text="a_b"))) == [b]  # "_" is no wildcard
    assert ids(await store.tasks(TaskFilter(text="%"))) == []
    assert ids(await store.tasks(TaskFilter(TaskState.QUEUED, text="x"))) == [c]


async def test_tasks_text_filter_ignores_case(store: Store) -> None:
    a, b = await store.enqueue([new("Mail.Send", "q"), new("h", "Reports")])
    assert ids(await store.tasks(TaskFilter(text="mail"))) == [a]
    assert ids(await store.tasks(TaskFilter(text="REPORTS"))) == [b]


async def test_position_and_around_agree_with_tasks(store: Store, clock: FakeClock) -> None:
    await _mixed(store, clock)
    filters = [
        TaskFilter(TaskState.QUEUED),
        TaskFilter(TaskState.QUEUED, queue="a"),
        TaskFilter(TaskState.QUEUED, handler="h"),
        TaskFilter(TaskState.SCHEDULED),
        TaskFilter(TaskState.RUNNING),
        TaskFilter(TaskState.SUCCEEDED),
        TaskFilter(TaskState.FAILED, queue="b"),
        TaskFilter(TaskState.QUEUED, text="a"),
        TaskFilter(id_prefix="1"),
        TaskFilter(),
    ]
    everything = ids(await store.tasks(ALL))
    for flt in filters:
        full = ids(await store.tasks(replace(flt, limit=10_000)))
        assert full, flt
        for index, tid in enumerate(full):
            assert await store.position(int(tid), flt) == index, (flt, tid)
            for before, limit in ((0, 3), (2, 3), (5, 4)):
                window = replace(flt, limit=limit, offset=7)  # around() ignores the offset
                start = index - min(before, index, limit - 1)
                got = await store.around(int(tid), window, before)
                assert got is not None, (flt, tid)
                assert (got[0], ids(got[1])) == (start, full[start : start + limit]), (
                    flt,
                    tid,
                    before,
                )
        for outside in set(everything) - set(full):
            assert await store.position(int(outside), flt) is None
            assert await store.around(int(outside), flt, 2) is None
    assert await store.position(999_999, TaskFilter()) is None
    assert await store.around(999_999, TaskFilter(), 1) is None


async def test_oldest_queued_per_queue(store: Store, clock: FakeClock) -> None:
    assert await store.oldest_queued() == {}
    t0 = clock.now
    (first,) = await store.enqueue([new(queue="a", priority=1)])
    clock.advance(10)
    await store.enqueue([new(queue="a", priority=9), new(queue="b")])
    await store.enqueue([new(queue="c", run_at=clock.now + 5)])  # scheduled: not queued
    assert await store.oldest_queued() == {"a": t0, "b": t0 + 10}
    await store.cancel(int(first), "op", "x")
    assert await store.oldest_queued() == {"a": t0 + 10, "b": t0 + 10}
    await claim(store, limit=10)
    assert await store.oldest_queued() == {}


async def test_unclaimable_counts_queued_tasks_of_other_handlers(store: Store) -> None:
    await store.enqueue([new("h"), new("x"), new("x"), new("y", run_at=START + 60), new("z")])
    await claim(store, handlers=["z"])
    assert await store.unclaimable(["h"]) == {"x": 2}
    assert await store.unclaimable(["h", "x"]) == {}
    assert await store.unclaimable([]) == {"h": 1, "x": 2}
    found = await store.unclaimable(["h"], limit=1)  # looks at one task only
    assert found == {"x": 1}


# -- unique keys -------------------------------------------------------------------------


async def test_unique_key_deduplicates_until_the_holder_finishes(
    store: Store, clock: FakeClock
) -> None:
    (first,) = await store.enqueue([new(unique_key="report:1")])
    assert getattr(first, "deduplicated", False) is False
    dup, other = await store.enqueue(
        [new(unique_key="report:1", priority=9), new(unique_key="report:2")]
    )
    assert dup == first and getattr(dup, "deduplicated", False) is True
    assert other != first and getattr(other, "deduplicated", False) is False
    assert (await store.get(int(first))).unique_key == "report:1"
    assert len(await store.tasks(ALL)) == 2
    # within one batch too
    one, two = await store.enqueue([new(unique_key="batch"), new(unique_key="batch")])
    assert two == one and getattr(two, "deduplicated", False) is True
    await store.cancel(int(one), "op", "x")
    await check_counts(store)
    # a scheduled or running holder holds the key too
    (c,) = await claim(store, limit=1)
    assert str(c.id) == first
    (again,) = await store.enqueue([new(unique_key="report:1")])
    assert again == first and getattr(again, "deduplicated", False) is True
    _, claimed = await store.enqueue_and_claim(new(unique_key="report:1"), "w9", LEASE)
    assert claimed is None
    assert len(await store.tasks(ALL)) == 3
    # finished: the key is free again
    await finish(store, clock, c, TaskState.SUCCEEDED)
    (fresh,) = await store.enqueue([new(unique_key="report:1")])
    assert fresh != first and getattr(fresh, "deduplicated", False) is False
    await store.cancel(int(fresh), "op", "x")
    (later,) = await store.enqueue([new(unique_key="report:1", run_at=clock.now + 9)])
    assert later not in (first, fresh) and not getattr(later, "deduplicated", False)
    # a finished task cannot come back while another holds its key
    with pytest.raises(InvalidTransition, match="unique key"):
        await store.retry(int(fresh), "op", None)
    await check_counts(store)


# -- webhooks ---------------------------------------------------------------------------


async def test_final_state_of_a_task_with_a_webhook_queues_its_call(
    store: Store, clock: FakeClock
) -> None:
    hook = "https://example.com/hook"
    (tid,) = await store.enqueue([new(webhook=hook, retries=1)])
    (c,) = await claim(store)
    assert c.webhook == hook
    await finish(store, clock, c, TaskState.SCHEDULED, run_at=clock.now + 1)
    assert await store.tasks(TaskFilter(handler=WEBHOOK_HANDLER)) == []  # not final yet
    clock.advance(1)
    await store.promote_due()
    (c,) = await claim(store)
    await finish(store, clock, c, TaskState.FAILED, error=CODEC.seal("no"))
    (call,) = await store.tasks(TaskFilter(handler=WEBHOOK_HANDLER))
    assert (call.queue, call.state, call.max_retries) == (
        WEBHOOK_QUEUE,
        TaskState.QUEUED,
        WEBHOOK_RETRIES,
    )
    assert call.payload == {"url": hook, "task_id": tid, "state": "failed"}
    (cancelled,) = await store.enqueue([new(webhook=hook)])
    await store.cancel(int(cancelled), "op", "x")
    calls = await store.tasks(TaskFilter(handler=WEBHOOK_HANDLER))
    assert {(r.payload["task_id"], r.payload["state"]) for r in calls} == {
        (tid, "failed"),
        (cancelled, "cancelled"),
    }
    await check_counts(store)


# -- workflows ---------------------------------------------------------------------------


def chain_steps() -> list[NewTask]:
    return [
        new("s0", payload={"x": 1}, retries=0, step=0),
        new("s1", payload={"y": 2}, retries=0, step=1, receives="", waiting=True),
        new("s2", payload={"z": 3}, retries=0, step=2, receives="prev", waiting=True),
    ]


async def test_chain_runs_step_by_step_handing_results_on(store: Store, clock: FakeClock) -> None:
    wid, tids = await store.enqueue_workflow("chain", chain_steps())
    flow = await store.workflow(wid)
    assert (flow.id, flow.kind, flow.created_at, flow.task_ids) == (
        str(wid),
        "chain",
        clock.now,
        tids,
    )
    assert [(s.index, s.handler, s.state, s.waiting) for s in flow.steps] == [
        (0, "s0", TaskState.QUEUED, False),
        (1, "s1", TaskState.SCHEDULED, True),
        (2, "s2", TaskState.SCHEDULED, True),
    ]
    assert flow.state == "running"
    rec = await store.get(int(tids[1]))
    assert (rec.workflow_id, rec.step, rec.waiting) == (str(wid), 1, True)
    await check_counts(store)
    # waiting steps are never due by time alone
    clock.advance(10 * 365 * 86400)
    moved, nxt = await store.promote_due()
    assert moved == [] and (nxt is None or nxt >= WAITING_RUN_AT)
    (c0,) = await claim(store, handlers=["s0", "s1", "s2"])
    assert c0.id == int(tids[0]) and c0.workflow_id == wid
    await finish(store, clock, c0, TaskState.SUCCEEDED, result=CODEC.encode({"r": 10, "y": 0}))
    # step 2 is queued now, with the result merged in (its own arguments win)
    s1 = await store.get(int(tids[1]))
    assert (s1.state, s1.waiting, s1.payload) == (TaskState.QUEUED, False, {"r": 10, "y": 2})
    assert s1.run_at is None or s1.run_at <= clock.now
    assert await store.promote_due() == ([], nxt)
    await check_counts(store)
    (c1,) = await claim(store, handlers=["s0", "s1", "s2"])
    assert c1.id == int(tids[1])
    await finish(store, clock, c1, TaskState.SUCCEEDED, result=CODEC.encode([1, 2]))
    s2 = await store.get(int(tids[2]))
    assert (s2.state, s2.payload) == (TaskState.QUEUED, {"z": 3, "prev": [1, 2]})
    (c2,) = await claim(store, handlers=["s0", "s1", "s2"])
    await finish(store, clock, c2, TaskState.SUCCEEDED, result="null")
    flow = await store.workflow(wid)
    assert flow.state == "succeeded"
    assert all(s.state == TaskState.SUCCEEDED and s.finished_at == clock.now for s in flow.steps)
    await check_counts(store)


async def test_chain_failure_stops_the_rest_and_retry_resumes(
    store: Store, clock: FakeClock
) -> None:
    wid, tids = await store.enqueue_workflow("chain", chain_steps())
    handlers = ["s0", "s1", "s2"]
    (c0,) = await claim(store, handlers=handlers)
    await finish(store, clock, c0, TaskState.FAILED, error=CODEC.seal("boom"))
    flow = await store.workflow(wid)
    assert [(s.state, s.waiting) for s in flow.steps] == [
        (TaskState.FAILED, False),
        (TaskState.CANCELLED, True),
        (TaskState.CANCELLED, True),
    ]
    assert flow.state == "failed"
    await check_counts(store)
    # a stopped step waits for the one that failed: it cannot be retried on its own
    with pytest.raises(InvalidTransition):
        await store.retry(int(tids[1]), "op", None)
    assert await store.retry(int(tids[0]), "op", None) == TaskState.FAILED
    flow = await store.workflow(wid)
    assert [(s.state, s.waiting) for s in flow.steps] == [
        (TaskState.QUEUED, False),
        (TaskState.SCHEDULED, True),
        (TaskState.SCHEDULED, True),
    ]
    assert flow.state == "running"
    await check_counts(store)
    (c0,) = await claim(store, handlers=handlers)
    assert c0.attempts == 2
    await finish(store, clock, c0, TaskState.SUCCEEDED, result=CODEC.encode({"r": 1}))
    assert (await store.get(int(tids[1]))).state == TaskState.QUEUED
    # cancelling a step stops the rest the same way
    await store.cancel(int(tids[1]), "op", "enough")
    flow = await store.workflow(wid)
    assert [s.state for s in flow.steps] == [
        TaskState.SUCCEEDED,
        TaskState.CANCELLED,
        TaskState.CANCELLED,
    ]
    assert flow.state == "cancelled"
    assert await store.retry_where([TaskState.CANCELLED], None, None, "op") == 1  # step 2 only
    assert [s.state for s in (await store.workflow(wid)).steps] == [
        TaskState.SUCCEEDED,
        TaskState.QUEUED,
        TaskState.SCHEDULED,
    ]
    await check_counts(store)


async def test_group_callback_gets_every_result_once_all_succeed(
    store: Store, clock: FakeClock
) -> None:
    steps = [
        new("m", payload={"i": 0}, step=0),
        new("m", payload={"i": 1}, step=1),
        new("cb", payload={"tag": "t"}, step=2, receives="results", waiting=True),
    ]
    wid, tids = await store.enqueue_workflow("group", steps)
    flow = await store.workflow(wid)
    assert flow.kind == "group"
    assert [(s.state, s.waiting, s.callback) for s in flow.steps] == [
        (TaskState.QUEUED, False, False),
        (TaskState.QUEUED, False, False),
        (TaskState.SCHEDULED, True, True),
    ]
    m0, m1 = await claim(store, handlers=["m", "cb"])
    await finish(store, clock, m1, TaskState.SUCCEEDED, result=CODEC.encode("one"))
    assert (await store.get(int(tids[2]))).state == TaskState.SCHEDULED
    await finish(store, clock, m0, TaskState.SUCCEEDED, result=CODEC.encode("zero"))
    callback = await store.get(int(tids[2]))
    assert callback.state == TaskState.QUEUED
    assert callback.payload == {"tag": "t", "results": ["zero", "one"]}
    await check_counts(store)


async def test_a_rescue_that_fails_a_step_stops_its_chain(store: Store, clock: FakeClock) -> None:
    hook = "https://example.com/hook"
    steps = chain_steps()
    steps[0].webhook = hook
    wid, tids = await store.enqueue_workflow("chain", steps)
    await claim(store, handlers=["s0"])
    clock.advance(LEASE + 1)
    (r,) = await store.rescue("w2")
    assert r.state == TaskState.FAILED  # retries=0
    flow = await store.workflow(wid)
    assert [s.state for s in flow.steps] == [
        TaskState.FAILED,
        TaskState.CANCELLED,
        TaskState.CANCELLED,
    ]
    (call,) = await store.tasks(TaskFilter(handler=WEBHOOK_HANDLER))
    assert call.payload == {"url": hook, "task_id": tids[0], "state": "failed"}
    await check_counts(store)


async def test_unknown_workflow_is_a_lookup_error(store: Store) -> None:
    with pytest.raises(LookupError):
        await store.workflow(999_999)


# -- periodic schedules ------------------------------------------------------------------


def schedule(
    name: str = "tick", payload: dict[str, Any] | None = None, every: float = 60.0, first: float = 0
) -> StoredSchedule:
    body = CODEC.encode(payload or {"n": 1})
    return StoredSchedule(
        name, "h", body, body, "periodic", 6, 2, every, None, "UTC", first or START + every
    )


async def test_sync_schedules_reports_added_and_changed(store: Store, clock: FakeClock) -> None:
    assert await store.sync_schedules([schedule(), schedule("other")]) == ["tick", "other"]
    assert await store.sync_schedules([schedule(first=START + 1)]) == []  # unchanged: kept
    (info, _) = await store.schedules()
    assert info.next_run == START + 60
    assert await store.sync_schedules([schedule(payload={"n": 2})]) == ["tick"]
    assert await store.sync_schedules([schedule(every=30)]) == ["tick"]
    info = (await store.schedules())[1]
    assert (info.name, info.every, info.next_run) == ("tick", 30, START + 30)
    assert [s.name for s in await store.schedules()] == ["other", "tick"]


async def test_fire_schedules_runs_each_due_time_exactly_once(
    store: Store, clock: FakeClock
) -> None:
    await store.sync_schedules([schedule()])
    (info,) = await store.schedules()
    assert (info.handler, info.queue, info.every, info.cron, info.tz) == (
        "h",
        "periodic",
        60,
        None,
        "UTC",
    )
    assert (info.next_run, info.last_run, info.last_task_id, info.paused) == (
        START + 60,
        None,
        None,
        False,
    )
    assert await store.fire_schedules(next_run) == ([], START + 60)
    clock.advance(60)
    fired, nxt = await store.fire_schedules(next_run)
    assert nxt == START + 120 and len(fired) == 1
    name, tid, queue = fired[0]
    assert (name, queue) == ("tick", "periodic")
    rec = await store.get(int(tid))
    assert (rec.handler, rec.queue, rec.priority, rec.max_retries, rec.payload) == (
        "h",
        "periodic",
        6,
        2,
        {"n": 1},
    )
    assert rec.state == TaskState.QUEUED
    assert await store.fire_schedules(next_run) == ([], START + 120)  # not twice
    # runs missed while nobody fired are made up once, on the grid
    clock.advance(300)
    fired, nxt = await store.fire_schedules(next_run)
    assert len(fired) == 1 and nxt == START + 420
    (info,) = await store.schedules()
    assert (info.last_run, info.last_task_id, info.last_state) == (
        START + 120,
        fired[0][1],
        "queued",
    )
    assert len(await store.tasks(ALL)) == 2
    await check_counts(store)


async def test_concurrent_fires_enqueue_one_run(store: Store, clock: FakeClock) -> None:
    await store.sync_schedules([schedule()])
    clock.advance(60)
    results = await asyncio.gather(*(store.fire_schedules(next_run) for _ in range(4)))
    assert sum(len(fired) for fired, _ in results) == 1
    assert len(await store.tasks(ALL)) == 1


async def test_paused_schedule_does_not_fire_and_resumes_after_now(
    store: Store, clock: FakeClock
) -> None:
    await store.sync_schedules([schedule()])
    assert await store.set_schedule_paused("tick", True, next_run) is True
    assert await store.set_schedule_paused("tick", True, next_run) is False
    assert (await store.schedules())[0].paused
    clock.advance(150)
    assert await store.fire_schedules(next_run) == ([], None)
    assert await store.set_schedule_paused("tick", False, next_run) is True
    (info,) = await store.schedules()
    assert not info.paused and info.next_run == clock.now + 60  # missed runs not made up
    assert await store.fire_schedules(next_run) == ([], clock.now + 60)
    with pytest.raises(LookupError, match="no schedule named 'nope'"):
        await store.set_schedule_paused("nope", True, next_run)


async def test_trigger_schedule_enqueues_a_run_now(store: Store, clock: FakeClock) -> None:
    await store.sync_schedules([schedule()])
    clock.advance(5)
    tid = await store.trigger_schedule("tick", "op")
    rec = await store.get(int(tid))
    assert (rec.handler, rec.queue, rec.state, rec.payload) == (
        "h",
        "periodic",
        TaskState.QUEUED,
        {"n": 1},
    )
    (info,) = await store.schedules()
    assert (info.last_run, info.last_task_id, info.next_run) == (clock.now, tid, START + 60)
    with pytest.raises(LookupError, match="no schedule named 'nope'"):
        await store.trigger_schedule("nope", "op")
    await check_counts(store)


async def test_schedule_shows_its_last_runs_state(store: Store, clock: FakeClock) -> None:
    await store.sync_schedules([schedule()])
    tid = await store.trigger_schedule("tick", "op")
    (c,) = await claim(store)
    await finish(store, clock, c, TaskState.SUCCEEDED)
    assert (await store.schedules())[0].last_state == "succeeded"
    clock.advance(10)
    await store.purge_expired(1, 1, 10)
    (info,) = await store.schedules()
    assert (info.last_task_id, info.last_state) == (tid, "expired")


# -- flow control -------------------------------------------------------------------------


async def test_queue_rate_limit_is_a_token_bucket(store: Store, clock: FakeClock) -> None:
    flow = FlowLimits(queue_rates={"q": Rate(3, 1.0)})  # 3/s, bucket of 3
    await store.enqueue([new(queue="q") for _ in range(10)] + [new(queue="free")])
    got = await store.claim("w1", 10, ["h"], LEASE, flow)
    assert sorted(c.queue for c in got) == ["free", "q", "q", "q"]
    assert await store.claim("w1", 10, ["h"], LEASE, flow) == []
    clock.advance(0.5)
    assert len(await store.claim("w1", 10, ["h"], LEASE, flow)) == 1
    clock.advance(10)  # the bucket holds 3 at most
    assert len(await store.claim("w1", 10, ["h"], LEASE, flow)) == 3
    assert await store.claim("w1", 10, ["h"], LEASE, flow) == []
    await check_counts(store)


async def test_handler_rate_limit_across_queues(store: Store, clock: FakeClock) -> None:
    flow = FlowLimits(handler_rates={"slow": Rate(120, 60.0)})  # 2/s, bucket of 2
    await store.enqueue([new("slow", "ab"[i % 2]) for i in range(8)] + [new("fast", "a")])
    got = await store.claim("w1", 10, ["slow", "fast"], LEASE, flow)
    assert sorted(c.handler for c in got) == ["fast", "slow", "slow"]
    assert await store.claim("w1", 10, ["slow", "fast"], LEASE, flow) == []
    clock.advance(1)
    assert len(await store.claim("w1", 10, ["slow"], LEASE, flow)) == 2
    assert await store.claim("w1", 10, ["slow"], LEASE, flow) == []


async def test_handler_rate_limit_in_one_queue(store: Store, clock: FakeClock) -> None:
    flow = FlowLimits(handler_rates={"slow": Rate(120, 60.0)})  # 2/s, bucket of 2
    await store.enqueue([new("slow") for _ in range(5)] + [new("fast") for _ in range(2)])
    got = await store.claim("w1", 10, ["slow", "fast"], LEASE, flow)
    assert sorted(c.handler for c in got) == ["fast", "fast", "slow", "slow"]
    assert await store.claim("w1", 10, ["slow", "fast"], LEASE, flow) == []
    clock.advance(1)
    assert [c.handler for c in await store.claim("w1", 10, ["slow"], LEASE, flow)] == [
        "slow",
        "slow",
    ]


async def test_queue_concurrency_limit_counts_running_tasks(store: Store, clock: FakeClock) -> None:
    flow = FlowLimits(queue_concurrency={"q": 2})
    await store.enqueue([new(queue="q") for _ in range(5)])
    first = await store.claim("w1", 10, ["h"], LEASE, flow)
    assert len(first) == 2
    assert await store.claim("w2", 10, ["h"], LEASE, flow) == []  # any owner
    await finish(store, clock, first[0], TaskState.SUCCEEDED)
    assert len(await store.claim("w2", 10, ["h"], LEASE, flow)) == 1
    assert await store.claim("w2", 10, ["h"], LEASE, flow) == []


async def test_queue_weights_share_claims(store: Store) -> None:
    flow = FlowLimits(queue_weights={"a": 3.0, "b": 1.0})
    await store.enqueue([new(queue=q) for q in "ab" for _ in range(10)])
    got = [c.queue for _ in range(2) for c in await store.claim("w1", 4, ["h"], LEASE, flow)]
    assert sorted(got) == ["a"] * 6 + ["b"] * 2


async def test_flow_claim_keeps_priority_order_and_skips_paused(store: Store) -> None:
    flow = FlowLimits(queue_concurrency={"q": 10})
    await store.set_paused("held", True)
    low, high, _ = await store.enqueue(
        [new(queue="q", priority=1), new(queue="q", priority=9), new(queue="held")]
    )
    got = await store.claim("w1", 10, ["h"], LEASE, flow)
    assert [c.id for c in got] == [int(high), int(low)]
    assert all(c.attempts == 1 for c in got)


# -- the same store from several processes, and reopening ---------------------------------


async def test_two_stores_on_one_url_never_claim_the_same_task(backend: Backend) -> None:
    one, two = backend.make(), backend.make()
    await one.open()
    await two.open()
    try:
        await one.enqueue([new() for _ in range(40)])
        got: list[list[ClaimedTask]] = []
        for _ in range(5):
            got += await asyncio.gather(
                *(s.claim(f"w{i}", 3, ["h"], LEASE) for i, s in enumerate((one, two, one, two)))
            )
        claimed = [c.id for batch in got for c in batch]
        assert len(claimed) == len(set(claimed)) == 40
        counts = await two.counts()
        assert counts.totals()[TaskState.RUNNING] == 40
    finally:
        await one.close()
        await two.close()


async def test_two_stores_on_one_url_fire_each_due_run_once(backend: Backend) -> None:
    one, two = backend.make(), backend.make()
    await one.open()
    await two.open()
    try:
        await one.sync_schedules([schedule()])
        assert await two.sync_schedules([schedule()]) == []
        backend.clock.advance(60)
        results = await asyncio.gather(*(s.fire_schedules(next_run) for s in (one, two, one, two)))
        assert sum(len(fired) for fired, _ in results) == 1
        assert len(await two.tasks(ALL)) == 1
    finally:
        await one.close()
        await two.close()


async def test_everything_survives_close_and_reopen(backend: Backend) -> None:
    first = backend.make()
    await first.open()
    await first.enqueue([new(payload={"i": i}) for i in range(3)])
    await first.set_paused("p", True)
    await first.sync_schedules([schedule()])
    (c,) = await first.claim("w1", 1, ["h"], LEASE)
    await first.complete([done(c, TaskState.SUCCEEDED, backend.clock.now, result="7")])
    before = await first.tasks(ALL)
    counts = _nonzero(await first.counts())
    schedules = await first.schedules()
    await first.close()
    second = backend.make()
    await second.open()
    try:
        assert _nonzero(second.last_counts) == counts  # read on open
        assert await second.tasks(ALL) == before
        assert (await second.get(c.id)).result == 7
        fresh = await second.counts()
        assert _nonzero(fresh) == counts and fresh.paused == frozenset({"p"})
        assert await second.schedules() == schedules
        assert await second.sync_schedules([schedule()]) == []
    finally:
        await second.close()


async def test_encrypted_store_keeps_payloads_sealed_and_readable(backend: Backend) -> None:
    codec = Codec([generate_key()])
    sealed = backend.make(codec)
    assert sealed.encrypted
    await sealed.open()
    try:
        body = codec.encode({"secret": "s3"})
        assert body != '{"secret":"s3"}'
        (tid,) = await sealed.enqueue([NewTask("h", "q", 5, body, 0)])
        (c,) = await sealed.claim("w1", 1, ["h"], LEASE)
        assert codec.decode(c.payload) == {"secret": "s3"}
        result, error = codec.encode([1]), codec.seal("bad")
        await sealed.complete(
            [done(c, TaskState.FAILED, backend.clock.now, result=result, error=error)]
        )
        rec = await sealed.get(int(tid))
        assert (rec.payload, rec.result, rec.error) == ({"secret": "s3"}, [1], "bad")
    finally:
        await sealed.close()


async def test_store_basics(store: Store) -> None:
    assert isinstance(store.url, str) and store.url
    assert store.encrypted is False
    store.configure(durability="full", busy_timeout=2.0, lock_timeout=10.0)
    await store.enqueue([new()])
    p99 = store.latency_p99()
    assert p99 is None or p99 >= 0


# -- counts after every operation --------------------------------------------------------


async def test_counts_stay_consistent_through_every_operation(
    store: Store, clock: FakeClock
) -> None:
    async def step(coro: Any) -> Any:
        result = await coro
        await check_counts(store)
        return result

    tids = await step(store.enqueue([new(queue="ab"[i % 2]) for i in range(6)]))
    await step(store.enqueue([new(queue="c", run_at=clock.now + 5)]))
    await step(store.set_paused("b", True))
    got = await step(store.claim("w1", 3, ["h"], LEASE))
    await step(store.complete([done(got[0], TaskState.SUCCEEDED, clock.now)]))
    await step(store.complete([done(got[1], TaskState.FAILED, clock.now)]))
    await step(store.complete([done(got[2], TaskState.SCHEDULED, clock.now, run_at=clock.now + 1)]))
    await step(store.set_paused("b", False))
    _, handed = await step(store.enqueue_and_claim(new(queue="d"), "w1", LEASE))
    assert handed is None
    clock.advance(5)
    await step(store.promote_due())
    await step(store.cancel(int(tids[1]), "op", "x"))
    await step(store.retry(int(tids[1]), "op", None))
    await step(store.reprioritize(int(tids[1]), 9, "op"))
    more = await step(store.claim("w2", 4, ["h"], LEASE))
    await step(store.complete([done(more[0], TaskState.QUEUED, clock.now, release=True)]))
    clock.advance(LEASE + 1)
    await step(store.rescue("w9"))
    await step(store.retry_where([TaskState.FAILED], None, None, "op"))
    await step(store.enqueue_workflow("chain", chain_steps()))
    await step(store.cancel(int((await store.tasks(TaskFilter(handler="s0")))[0].id), "op", "x"))
    await step(store.purge([TaskState.SUCCEEDED, TaskState.CANCELLED], None, None, None))
    clock.advance(100)
    await step(store.purge_expired(1, 1, 100))
    await step(store.sync_schedules([schedule()]))
    clock.advance(60)
    await step(store.fire_schedules(next_run))
    await step(store.trigger_schedule("tick", "op"))
