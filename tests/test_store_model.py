"""A Hypothesis state machine: each store backend against a plain-Python model.

Random enqueues, claims, completions (success, retry, failure, stale), cancels,
retries, reprioritisations, clock jumps, promotions, rescues and restarts. After
every step: the store's counts (``last_counts`` and a fresh ``counts()``) equal the
model's (and, on SQLite, ``COUNT(*) GROUP BY``), every task's state matches, attempts
never decrease, only allowed transitions occur. Runs on every backend the contract
suite does (see ``test_store_contract.py``).
"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from engine.codec import Codec
from engine.errors import InvalidTransition, TaskNotFound
from engine.model import ACTIVE_STATES, TERMINAL_STATES, TaskState, is_allowed
from engine.store import open_store
from engine.store.base import ClaimedTask, Completion, NewTask, Store, TaskFilter

from .test_store_contract import BACKENDS, FakeClock, postgres_built

T = TypeVar("T")

QUEUES = ("a", "b")
OWNERS = ("node-1", "node-2")
LEASE = 10.0


@dataclass
class ModelTask:
    state: TaskState
    queue: str
    priority: int
    attempts: int = 0
    max_retries: int = 2
    owner: str | None = None
    lease_until: float = 0.0
    run_at: float | None = None


@dataclass
class Backend:
    """Where each example's store lives: ``database()`` gives the URL for a new example
    (an SQLite file of its own; PostgreSQL reuses the test's schema, emptied through
    the Store protocol), ``raw_counts`` counts the rows behind the store's back."""

    database: Callable[[], str | Path]
    raw_counts: Callable[[str | Path], dict[TaskState, int]] | None = None


def sqlite_row_counts(path: str | Path) -> dict[TaskState, int]:
    conn = sqlite3.connect(path)
    try:
        rows = dict(conn.execute("SELECT state, count(*) FROM tasks GROUP BY state"))
    finally:
        conn.close()
    return {TaskState(k): v for k, v in rows.items()}


class StoreMachine(RuleBasedStateMachine):
    #: set on a subclass per backend (see ``test_store_machine``)
    backend: ClassVar[Backend]

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.url = self.backend.database()
        self.clock = FakeClock()
        self.store = self._open()
        self._empty()
        self.model: dict[int, ModelTask] = {}
        self.held: dict[int, ClaimedTask] = {}
        self.seen_attempts: dict[int, int] = {}

    def _open(self) -> Store:
        store = open_store(self.url, Codec(), self.clock)
        self.loop.run_until_complete(store.open())
        return store

    def _empty(self) -> None:
        """Remove what an earlier example left in a reused database."""
        for record in self.run(self.store.tasks(TaskFilter(limit=100_000))):
            if record.state in ACTIVE_STATES:
                self.run(self.store.cancel(int(record.id), "model", "new example"))
        self.run(self.store.purge(list(TERMINAL_STATES), None, None, None))

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(self.store.close())
        self.loop.close()

    def some_id(self, data: st.DataObject) -> int:
        """A task id: one of the model's, or one no task has."""
        unknown = max(self.model, default=0) + 1
        return data.draw(st.sampled_from([*sorted(self.model), unknown, unknown + 1]))

    def move(self, task_id: int, new: TaskState) -> None:
        task = self.model[task_id]
        assert is_allowed(task.state, new), (task.state, new)
        task.state = new

    # -- rules ----------------------------------------------------------------
    @rule(
        count=st.integers(1, 5),
        queue=st.sampled_from(QUEUES),
        priority=st.integers(0, 9),
        delay=st.sampled_from([None, None, 5.0]),
    )
    def enqueue(self, count: int, queue: str, priority: int, delay: float | None) -> None:
        run_at = None if delay is None else self.clock.now + delay
        ids = self.run(self.store.enqueue([NewTask("h", queue, priority, "{}", 2, run_at)] * count))
        for tid in ids:
            state = TaskState.QUEUED if run_at is None else TaskState.SCHEDULED
            self.model[int(tid)] = ModelTask(state, queue, priority, run_at=run_at)

    @rule(owner=st.sampled_from(OWNERS), queue=st.sampled_from(QUEUES), priority=st.integers(0, 9))
    def enqueue_and_claim(self, owner: str, queue: str, priority: int) -> None:
        waiting = any(t.state == TaskState.QUEUED for t in self.model.values())
        tid, claimed = self.run(
            self.store.enqueue_and_claim(NewTask("h", queue, priority, "{}", 2), owner, LEASE)
        )
        # Handed over only when no other task was waiting; otherwise queued as usual.
        assert (claimed is None) == waiting
        task = ModelTask(TaskState.QUEUED, queue, priority)
        self.model[int(tid)] = task
        if claimed is not None:
            self.move(int(tid), TaskState.RUNNING)
            task.attempts, task.owner, task.lease_until = 1, owner, self.clock.now + LEASE
            assert claimed.id == int(tid) and claimed.attempts == 1
            self.held[claimed.id] = claimed

    @rule(owner=st.sampled_from(OWNERS), limit=st.integers(1, 4))
    def claim(self, owner: str, limit: int) -> None:
        claimed = self.run(self.store.claim(owner, limit, ["h"], LEASE))
        ready = sorted(
            (t for t in self.model.items() if t[1].state == TaskState.QUEUED),
            key=lambda item: (-item[1].priority, item[0]),
        )
        # The store takes exactly the best `limit` ready tasks.
        assert [c.id for c in claimed] == [tid for tid, _ in ready[:limit]]
        for c in claimed:
            task = self.model[c.id]
            self.move(c.id, TaskState.RUNNING)
            task.attempts += 1
            task.owner, task.lease_until = owner, self.clock.now + LEASE
            assert c.attempts == task.attempts
            self.held[c.id] = c

    @precondition(lambda self: bool(self.held))
    @rule(
        data=st.data(), outcome=st.sampled_from(["succeeded", "failed", "retry", "later", "stale"])
    )
    def complete(self, data: st.DataObject, outcome: str) -> None:
        task_id = data.draw(st.sampled_from(sorted(self.held)))
        claimed = self.held.pop(task_id)
        task = self.model[task_id]
        owner = task.owner if task.state == TaskState.RUNNING else "gone"
        attempt = claimed.attempts + (1 if outcome == "stale" else 0)
        state = {
            "succeeded": TaskState.SUCCEEDED,
            "failed": TaskState.FAILED,
            "retry": TaskState.QUEUED,
            "later": TaskState.SCHEDULED,
            "stale": TaskState.SUCCEEDED,
        }[outcome]
        run_at = self.clock.now + 3 if state == TaskState.SCHEDULED else self.clock.now
        report = self.run(
            self.store.complete(
                [
                    Completion(
                        task_id,
                        attempt,
                        owner or "gone",
                        state,
                        self.clock.now,
                        result="1",
                        run_at=run_at,
                        queue=task.queue,
                    )
                ]
            )
        )
        live = task.state == TaskState.RUNNING and task.owner == owner and task.attempts == attempt
        assert len(report.applied) == (1 if live else 0)
        if live:
            self.move(task_id, state)
            task.owner = None
            task.run_at = run_at if state == TaskState.SCHEDULED else task.run_at

    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        task_id = self.some_id(data)
        task = self.model.get(task_id)
        try:
            previous = self.run(self.store.cancel(task_id, "op", "test"))
        except TaskNotFound:
            assert task is None
            return
        except InvalidTransition:
            assert task is not None and task.state in TERMINAL_STATES
            return
        assert task is not None and previous == task.state
        self.move(task_id, TaskState.CANCELLED)
        task.owner = None
        self.held.pop(task_id, None)

    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        task_id = self.some_id(data)
        task = self.model.get(task_id)
        try:
            self.run(self.store.retry(task_id, "op", None))
        except TaskNotFound:
            assert task is None
            return
        except InvalidTransition:
            assert task is not None and task.state not in (TaskState.FAILED, TaskState.CANCELLED)
            return
        assert task is not None
        self.move(task_id, TaskState.QUEUED)
        task.max_retries = max(task.max_retries, task.attempts + 2)

    @rule(data=st.data(), priority=st.integers(0, 9))
    def reprioritize(self, data: st.DataObject, priority: int) -> None:
        task_id = self.some_id(data)
        task = self.model.get(task_id)
        try:
            old = self.run(self.store.reprioritize(task_id, priority, "op"))
        except (TaskNotFound, InvalidTransition):
            assert task is None or task.state not in (TaskState.QUEUED, TaskState.SCHEDULED)
            return
        assert task is not None and old == task.priority
        task.priority = priority

    @rule(seconds=st.sampled_from([1.0, 4.0, 11.0]))
    def advance_clock_and_promote(self, seconds: float) -> None:
        self.clock.now += seconds
        moved, _ = self.run(self.store.promote_due())
        due = {
            tid
            for tid, t in self.model.items()
            if t.state == TaskState.SCHEDULED
            and t.run_at is not None
            and t.run_at <= self.clock.now
        }
        assert {tid for tid, _ in moved} == due
        for tid in due:
            self.move(tid, TaskState.QUEUED)

    @rule(me=st.sampled_from(OWNERS))
    def rescue(self, me: str) -> None:
        rescued = self.run(self.store.rescue(me))
        expected = {
            tid
            for tid, t in self.model.items()
            if t.state == TaskState.RUNNING and t.lease_until < self.clock.now and t.owner != me
        }
        assert {r.id for r in rescued} == expected
        for r in rescued:
            task = self.model[r.id]
            new = TaskState.FAILED if task.attempts > task.max_retries else TaskState.QUEUED
            assert r.state == new
            self.move(r.id, new)
            task.owner = None

    @rule()
    def restart(self) -> None:
        self.run(self.store.close())
        self.store = self._open()

    # -- invariants -----------------------------------------------------------
    @invariant()
    def counts_match(self) -> None:
        expected = dict.fromkeys(TaskState, 0)
        for task in self.model.values():
            expected[task.state] += 1
        assert self.store.last_counts.totals() == expected
        assert self.run(self.store.counts()).totals() == expected
        if self.backend.raw_counts is not None:
            rows = self.backend.raw_counts(self.url)
            assert rows == {k: v for k, v in expected.items() if v}

    @invariant()
    def states_and_attempts_match(self) -> None:
        records = self.run(self.store.tasks(TaskFilter(limit=10_000)))
        assert len(records) == len(self.model)
        for record in records:
            task = self.model[int(record.id)]
            assert record.state == task.state and record.attempts == task.attempts
            assert record.attempts >= self.seen_attempts.get(int(record.id), 0)
            self.seen_attempts[int(record.id)] = record.attempts


SETTINGS = settings(
    max_examples=100,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        numbers = itertools.count()
        return Backend(lambda: tmp_path / f"model-{next(numbers)}.db", sqlite_row_counts)
    if not postgres_built():
        pytest.skip("PostgreSQL store not built yet")
    url: str = request.getfixturevalue("pg_url")
    return Backend(lambda: url)


def test_store_machine(backend: Backend) -> None:
    class Machine(StoreMachine):
        pass

    Machine.backend = backend
    run_state_machine_as_test(Machine, settings=SETTINGS)
