"""The SQLite writer: one connection on one thread, one transaction per batch.

aiosqlite costs one thread hop per statement, and a write transaction needs at
least three (BEGIN, the statement, COMMIT). Here a whole *batch of operations* —
every enqueue, claim and completion submitted while the previous batch was in
flight — runs in a single ``BEGIN IMMEDIATE … COMMIT`` on a single hop: group
commit. An operation is a function of a :class:`Txn`; it returns its result, or
*returns* an exception for an expected refusal (unknown id …) so one refusal does
not roll back its neighbours. An unexpected error rolls the batch back and the
operations are retried one by one, so only the faulty one fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from queue import Empty, SimpleQueue
from typing import Any, TypeVar

from engine.aio import settle
from engine.errors import StoreError
from engine.faults import no_fault
from engine.model import TaskState

log = logging.getLogger(__name__)

T = TypeVar("T")
Op = Callable[["Txn"], Any]

_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})


def is_busy(exc: BaseException) -> bool:
    return (
        isinstance(exc, sqlite3.OperationalError)
        and getattr(exc, "sqlite_errorcode", None) in _BUSY_CODES
    ) or "database is locked" in str(exc)


def describe_sqlite_error(exc: sqlite3.Error) -> StoreError:
    """Turn an sqlite3 error into a StoreError whose message says what happened."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code == sqlite3.SQLITE_FULL:
        return StoreError(f"the store is full (disk or size limit reached): {exc}")
    if code == sqlite3.SQLITE_CORRUPT or "malformed" in str(exc):
        return StoreError(f"the database file is corrupted: {exc}")
    if code == sqlite3.SQLITE_READONLY:
        return StoreError(f"the database file has become read-only: {exc}")
    if is_busy(exc):
        return StoreError(f"the database file stayed locked by another process: {exc}")
    return StoreError(f"SQLite error: {exc}")


def locked(path: object, waited: float) -> StoreError:
    """The one message for a store whose write lock another process would not give up."""
    return StoreError(
        f"the store {path} is locked by another process (waited {waited:g} s, lock_timeout); "
        "nothing was written"
    )


UPSERT_COUNT = (
    "INSERT INTO task_counts(queue, state, n) VALUES (?, ?, ?) "
    "ON CONFLICT(queue, state) DO UPDATE SET n = n + excluded.n"
)


class Txn:
    """One open write transaction, plus the count changes it has made.

    ``refresh_counts`` asks for a full re-read of the counts after commit (for
    changes that deltas do not describe, such as pausing a queue); ``woke`` says that
    tasks became ready, so the other processes' engines are woken after the commit.
    """

    __slots__ = ("_deltas", "conn", "fault", "now", "refresh_counts", "woke")

    def __init__(
        self, conn: sqlite3.Connection, now: float, fault: Callable[[str], None] = no_fault
    ) -> None:
        self.conn = conn
        self.now = now
        self.fault = fault  # a crash test's named fault point (see engine.faults)
        self.refresh_counts = False
        self.woke = False
        self._deltas: defaultdict[tuple[str, str], int] = defaultdict(int)

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    def moved(self, queue: str, old: str, new: str, n: int = 1) -> None:
        """Record that ``n`` tasks of ``queue`` went from ``old`` to ``new`` ("" = none)."""
        if old:
            self._deltas[(queue, old)] -= n
        if new:
            self._deltas[(queue, new)] += n
            if new == TaskState.QUEUED:
                self.woke = True

    def wake(self) -> None:
        """Tasks became ready without changing state (a queue was resumed)."""
        self.woke = True

    def flush_counts(self) -> dict[tuple[str, str], int]:
        """Write the count changes; returns them."""
        deltas = {key: n for key, n in self._deltas.items() if n}
        if deltas:
            self.conn.executemany(UPSERT_COUNT, [(q, s, n) for (q, s), n in deltas.items()])
        self._deltas.clear()
        return deltas


@dataclass
class BatchResult:
    """What one group commit did: each op's result (or exception), the count
    changes, and a fresh read of all counts when one was due."""

    results: list[Any]
    deltas: dict[tuple[str, str], int] = field(default_factory=dict)
    counts: Any = None
    elapsed: float = 0.0  # seconds from the first BEGIN to the last COMMIT
    woke: bool = False  # a committed operation made tasks ready


_STOP = object()


@dataclass
class LockWait:
    """How long a write keeps retrying a lock another process holds: ``timeout`` seconds
    from its start, never past ``give_up_at`` (``time.monotonic()``), which a stopping
    engine sets so that its last writes end on time."""

    timeout: float = 60.0
    give_up_at: float | None = None

    def deadline(self, started: float) -> float:
        end = started + self.timeout
        return end if self.give_up_at is None else min(end, self.give_up_at)


class WriterThread:
    """Owns one sqlite3 connection on a dedicated thread.

    ``write(op)`` queues a store operation. When the thread picks up work it takes
    *every* operation waiting in its queue and runs them as one batch (group
    commit). There is no timer: while a transaction runs, new operations pile up
    and form the next batch, and a burst submitted in one event-loop iteration
    lands together because the thread needs the GIL, which the loop releases when
    it goes back to waiting. ``submit(fn)`` runs a plain function on the
    connection between batches (pragmas, reads that must not race the writes).
    ``after(outcome)`` runs on the thread once a batch's outcome is on its way to the
    loop (the wake-ups of other processes: not in the way of this one's results).
    """

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        run_ops: Callable[[sqlite3.Connection, list[Op]], Any],
        deliver: Callable[[list[asyncio.Future[Any]], Any, BaseException | None], None],
        name: str,
        after: Callable[[Any], None] = lambda outcome: None,
    ) -> None:
        self._connect = connect
        self._run_ops = run_ops
        self._deliver = deliver
        self._after = after
        self._queue: SimpleQueue[Any] = SimpleQueue()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._ready: asyncio.Future[None] | None = None
        self._stopped: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._ready = self._loop.create_future()
        self._stopped = self._loop.create_future()
        self._thread.start()
        await self._ready

    def write(self, op: Op) -> asyncio.Future[Any]:
        """Queue ``op`` for the next batch; the future gets its result."""
        assert self._loop is not None, "WriterThread.start() first"
        future: asyncio.Future[Any] = self._loop.create_future()
        self._queue.put((op, future))
        return future

    def submit(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """Run ``fn(connection)`` on the thread, alone; the future gets its result."""
        assert self._loop is not None, "WriterThread.start() first"
        future: asyncio.Future[T] = self._loop.create_future()
        self._queue.put((fn, partial(settle, future)))
        return future

    async def stop(self) -> None:
        """Finish everything queued so far, then close the connection."""
        if self._stopped is None or not self._thread.is_alive():
            return
        self._queue.put(_STOP)
        await asyncio.shield(self._stopped)

    def _post(self, callback: Callable[..., None], *args: Any) -> None:
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            self._loop.call_soon_threadsafe(callback, *args)

    def _main(self) -> None:
        assert self._ready is not None and self._stopped is not None
        ready, stopped = partial(settle, self._ready), partial(settle, self._stopped)
        try:
            conn = self._connect()
        except BaseException as exc:
            self._post(ready, None, exc)
            self._post(stopped, None, None)
            return
        self._post(ready, None, None)
        try:
            item = self._queue.get()
            while item is not _STOP:
                if isinstance(item[1], asyncio.Future):
                    item = self._batch(conn, item)
                    continue
                fn, callback = item
                try:
                    result = fn(conn)
                except BaseException as exc:
                    self._post(callback, None, exc)
                else:
                    self._post(callback, result, None)
                item = self._queue.get()
        finally:
            try:
                conn.close()
            finally:
                self._post(stopped, None, None)

    def _batch(self, conn: sqlite3.Connection, first: tuple[Op, asyncio.Future[Any]]) -> Any:
        """Run ``first`` and every operation queued behind it; returns the next item."""
        ops, futures = [first[0]], [first[1]]
        following: Any = None
        while following is None:
            try:
                item = self._queue.get_nowait()
            except Empty:
                break
            if item is not _STOP and isinstance(item[1], asyncio.Future):
                ops.append(item[0])
                futures.append(item[1])
            else:
                following = item
        try:
            outcome = self._run_ops(conn, ops)
        except BaseException as exc:
            self._post(self._deliver, futures, None, exc)
        else:
            self._post(self._deliver, futures, outcome, None)
            self._after(outcome)
        return following if following is not None else self._queue.get()


def apply_deltas(
    by_queue: dict[str, dict[TaskState, int]], deltas: dict[tuple[str, str], int]
) -> None:
    """Move the counts kept per queue by a batch's count changes."""
    for (queue, state), n in deltas.items():
        per = by_queue.get(queue)
        if per is None:
            per = by_queue[queue] = dict.fromkeys(TaskState, 0)
        per[state] += n  # type: ignore[index]  # TaskState is a StrEnum: "queued" finds it


def settle_batch(
    futures: list[asyncio.Future[Any]], outcome: BatchResult | None, error: BaseException | None
) -> None:
    """Settle each operation's future with its result or refusal (or, when the batch
    was lost, with its error)."""
    if outcome is None:
        for future in futures:
            if not future.done():
                future.set_exception(error or RuntimeError("store batch lost"))
        return
    for future, result in zip(futures, outcome.results, strict=True):
        if future.done():
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)


class CountsReader:
    """Decides, on the writer thread, when a batch should re-read every count.

    Between full reads the loop applies each batch's deltas, which is exact for
    this process; the periodic re-read picks up other processes' changes.
    """

    def __init__(self, read: Callable[[sqlite3.Connection], Any], every: float = 0.25) -> None:
        self._read = read
        self._every = every
        self._last = float("-inf")

    def __call__(self, conn: sqlite3.Connection, force: bool) -> Any:
        now = time.monotonic()
        if not force and now - self._last < self._every:
            return None
        self._last = now
        return self._read(conn)


def run_batch(
    conn: sqlite3.Connection,
    ops: list[Op],
    now: Callable[[], float],
    wait: LockWait,
    counts: CountsReader,
    fault: Callable[[str], None] = no_fault,
    store: str = "",
) -> BatchResult:
    """Run ``ops`` in one transaction; on an unexpected error, one transaction each.

    A lock another process holds past ``wait`` fails every operation of the batch with
    one "locked" error (``store`` names the file): retrying them one by one would wait
    ``lock_timeout`` again for each."""
    batch = BatchResult([])
    refresh = False
    started = time.perf_counter()
    once = partial(_run_once, fault=fault)
    try:
        refresh = _with_lock_retry(conn, ops, now, wait, batch, once)
    except Exception as exc:
        batch = BatchResult([])
        if is_busy(exc):
            batch.results = [locked(store, wait.timeout) for _ in ops]
        elif len(ops) == 1:
            batch.results.append(_as_store_error(exc, store, wait.timeout))
        else:
            log.warning(
                "a batch of %d store operations failed (%s); retrying one by one", len(ops), exc
            )
            for op in ops:
                try:
                    refresh |= _with_lock_retry(conn, [op], now, wait, batch, once)
                except Exception as single:
                    batch.results.append(_as_store_error(single, store, wait.timeout))
    batch.elapsed = time.perf_counter() - started
    batch.counts = counts(conn, refresh)
    return batch


def _as_store_error(exc: Exception, store: str, lock_timeout: float) -> Exception:
    if is_busy(exc):
        return locked(store, lock_timeout)
    return describe_sqlite_error(exc) if isinstance(exc, sqlite3.Error) else exc


def _with_lock_retry(
    conn: sqlite3.Connection,
    ops: list[Op],
    now: Callable[[], float],
    wait: LockWait,
    into: BatchResult,
    run_once: Callable[[sqlite3.Connection, list[Op], Callable[[], float], BatchResult], bool],
) -> bool:
    started = time.monotonic()
    pause = 0.00005
    while True:
        try:
            return run_once(conn, ops, now, into)
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or time.monotonic() >= wait.deadline(started):
                raise
            log.debug("store busy, retrying in %.3f s", pause)
            time.sleep(pause)
            pause = min(pause * 2, 0.01)


#: Operations with named fault points around their commit (see engine.faults).
_COMMIT_POINTS = {"claim": "claim", "enqueue_and_claim": "claim", "complete": "complete"}


def _commit_points(ops: list[Op]) -> set[str]:
    names = (getattr(getattr(op, "func", op), "__name__", "") for op in ops)
    return {_COMMIT_POINTS[name] for name in names if name in _COMMIT_POINTS}


def _run_once(
    conn: sqlite3.Connection,
    ops: list[Op],
    now: Callable[[], float],
    into: BatchResult,
    fault: Callable[[str], None] = no_fault,
) -> bool:
    """One transaction; on commit, appends results and deltas to ``into``."""
    conn.execute("BEGIN IMMEDIATE")
    points = _commit_points(ops) if fault is not no_fault else set()
    try:
        txn = Txn(conn, now(), fault)
        results = [op(txn) for op in ops]
        deltas = txn.flush_counts()
        for point in points:
            fault(f"{point}.before_commit")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    for point in points:
        fault(f"{point}.after_commit")
    into.results.extend(results)
    into.woke |= txn.woke
    for key, n in deltas.items():
        into.deltas[key] = into.deltas.get(key, 0) + n
    return txn.refresh_counts
