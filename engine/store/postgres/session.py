"""One PostgreSQL store's connections: the pool, the LISTEN connection, transactions.

:class:`PgSession` opens the store (migrating its schema), runs each write as one
transaction on a small asyncpg pool (retrying deadlocks, and a lost connection when
nothing can have been committed), keeps ``last_counts`` current from the counts
each transaction reads back and from a refresh every half second, and turns the
store's ``NOTIFY`` wake-ups from other nodes into a call of the pool's kick.
:class:`engine.store.postgres.PostgresStore` builds the Store contract on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, TypeVar

import asyncpg

from engine.codec import Codec
from engine.errors import (
    EncryptionKeyError,
    EngineNotRunning,
    ReadOnlyError,
    StoreError,
    StoreOpenError,
)
from engine.faults import FaultPlan, hook
from engine.metrics import Reservoir, percentile
from engine.model import TaskState
from engine.store.base import OpenMode, StoreCounts
from engine.store.postgres.conn import (
    DRIVER_ERRORS,
    READ_COUNTS,
    RETRYABLE,
    AmbiguousCommit,
    PgTarget,
    Txn,
    counts_from_rows,
    is_connection_lost,
    open_error,
    parse_url,
    quote_ident,
    store_error,
)
from engine.store.postgres.open import check_existing
from engine.store.postgres.schema import check_keys, migrate

log = logging.getLogger(__name__)

T = TypeVar("T")
Op = Callable[[Txn], Awaitable[T]]

POOL_MIN, POOL_MAX = 1, 8
COUNTS_EVERY = 0.5  # seconds between reads of the whole cluster's counts
LISTEN_PING = 10.0  # seconds between checks that the LISTEN connection is alive


async def _keep_session(conn: Any) -> None:
    """The pool's reset: nothing (asyncpg rolls back an open transaction itself), so
    releasing a connection costs no round trip and its session settings stay."""


class PgSession:
    """The connections of one store, and transactions on them."""

    def __init__(
        self,
        url: str,
        codec: Codec | None = None,
        clock: Callable[[], float] = time.time,
        *,
        by: str = "engine",
        faults: FaultPlan | None = None,
    ) -> None:
        self._target: PgTarget = parse_url(url)
        self.url = self._target.url
        self.codec = codec or Codec()
        self.clock = clock
        self._by = by
        self._fault = hook(faults)
        self._token = secrets.token_hex(6)  # tells this store's own notifications apart
        self._durability = "normal"
        self._busy_timeout = 5.0
        self._lock_timeout = 60.0
        self._mode = OpenMode()
        self._give_up_at = float("inf")
        self._pool: asyncpg.Pool | None = None
        self._listener: asyncpg.Connection | None = None
        self._listener_closed = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[Any]] = set()
        self._wakeup: Callable[[], None] | None = None
        self._counts = StoreCounts()
        self._counts_seq = -1
        self._seq = 0
        self._recover: list[tuple[str, float]] = []  # claims whose commit reply was lost
        self.transactions = 0
        self._latency = Reservoir(512)

    # -- lifecycle ------------------------------------------------------------
    @property
    def encrypted(self) -> bool:
        return self.codec.encrypted

    @property
    def target(self) -> PgTarget:
        return self._target

    @property
    def last_counts(self) -> StoreCounts:
        counts = self._counts
        by_queue = {q: dict(c) for q, c in counts.by_queue.items()}
        return StoreCounts(by_queue, counts.paused, counts.all_paused)

    def _server_settings(self) -> dict[str, str]:
        return {
            "application_name": self._by[:63],
            "search_path": quote_ident(self._target.schema),
            "synchronous_commit": "on" if self._durability == "full" else "off",
            "lock_timeout": f"{max(1, round(self._lock_timeout * 1000))}ms",
            "idle_in_transaction_session_timeout": "300s",
            "default_transaction_read_only": "on" if self._mode.read_only else "off",
        }

    def _connect_kwargs(self) -> dict[str, Any]:
        return {
            "dsn": self._target.dsn,
            "timeout": max(1.0, self._busy_timeout),
            "server_settings": self._server_settings(),
        }

    async def _connect(self, *args: Any, **kwargs: Any) -> asyncpg.Connection:
        """New pool connections: with the settings in force now (see :meth:`configure`)."""
        kwargs.update(self._connect_kwargs())  # the pool's own dsn argument is None
        connection: asyncpg.Connection = await asyncpg.connect(**kwargs)
        return connection

    def configure(self, *, durability: str, busy_timeout: float, lock_timeout: float) -> None:
        """Runtime settings; connections are replaced (on their next use) when the
        session settings they imply change."""
        before = self._server_settings()
        self._durability, self._busy_timeout = durability, busy_timeout
        self._lock_timeout = lock_timeout
        if self._pool is not None and self._server_settings() != before:
            self._spawn(self._pool.expire_connections())

    def give_up_at(self, deadline: float) -> None:
        """Transactions stop retrying at ``deadline`` (``time.monotonic()``): a stop's bound."""
        self._give_up_at = deadline

    def set_wakeup(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when another node makes tasks ready (LISTEN/NOTIFY)."""
        self._wakeup = callback

    async def open(self, mode: OpenMode | None = None) -> None:
        self._mode = mode = mode or OpenMode()
        self._give_up_at = float("inf")
        target = self._target
        try:
            conn = await asyncpg.connect(**self._connect_kwargs())
        except Exception as exc:
            raise open_error(target, exc) from None
        try:
            stored = None
            if mode.read_only or not mode.create:
                stored = await check_existing(conn, target, mode)
            if not mode.read_only:
                _, stored = await migrate(conn, target, self.codec.key_check_token(), self._fault)
            check_keys(
                target, self.encrypted, None if stored is None else self.codec.keys_match(stored)
            )
            pool = await asyncpg.create_pool(
                min_size=POOL_MIN,
                max_size=POOL_MAX,
                connect=self._connect,
                reset=_keep_session,
                max_inactive_connection_lifetime=60.0,
            )
        except (StoreOpenError, EncryptionKeyError):
            await conn.close()
            raise
        except Exception as exc:
            await conn.close()
            if isinstance(exc, asyncpg.PostgresError) and not is_connection_lost(exc):
                raise StoreOpenError(
                    f"cannot set up the store in schema {target.schema!r} at {target.where}: {exc}"
                ) from None
            raise open_error(target, exc) from None
        self._pool = pool
        try:
            if mode.client:  # commands only: no wake-ups, no counts loop
                await conn.close()
            else:
                await self._listen_on(conn)
            await self.counts()
        except BaseException as exc:
            conn.terminate()
            await self.close()
            if isinstance(exc, (StoreError, *DRIVER_ERRORS)):
                raise open_error(target, exc) from None
            raise
        if mode.client:
            return
        loop = asyncio.get_running_loop()
        self._loops = [
            loop.create_task(self._listen_loop(), name="taskdeck-pg-listen"),
            loop.create_task(self._counts_loop(), name="taskdeck-pg-counts"),
        ]

    async def close(self) -> None:
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, *self._background, return_exceptions=True)
        self._loops = []
        if self._listener is not None:
            self._listener.terminate()
            self._listener = None
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), 5.0)
            except DRIVER_ERRORS:
                pool.terminate()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- wake-ups -------------------------------------------------------------------
    def _on_notify(self, conn: Any, pid: int, channel: str, payload: object) -> None:
        if str(payload).startswith(self._token + ":"):
            return  # our own commit: this process already knows
        wakeup = self._wakeup
        if wakeup is not None:
            try:
                wakeup()
            except Exception:  # a wake-up must never break the listener
                log.exception("the wake-up callback failed")

    async def _listen_on(self, conn: asyncpg.Connection) -> None:
        closed = asyncio.Event()
        conn.add_termination_listener(lambda _conn: closed.set())
        await conn.add_listener(self._target.channel, self._on_notify)
        self._listener, self._listener_closed = conn, closed

    async def _listen_loop(self) -> None:
        """Keep the LISTEN connection up: reconnect with backoff when it drops, and
        wake the pool after a reconnect (notifications sent meanwhile are gone)."""
        backoff = 0.05
        while True:
            conn, closed = self._listener, self._listener_closed
            if conn is not None and not conn.is_closed():
                try:
                    await asyncio.wait_for(closed.wait(), LISTEN_PING)
                except TimeoutError:
                    try:  # silent for a while: is it still there?
                        await conn.fetchval("SELECT 1", timeout=LISTEN_PING)
                        backoff = 0.05
                        continue
                    except DRIVER_ERRORS:
                        pass
            self._listener = None
            if conn is not None:
                conn.terminate()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
            try:
                fresh = await asyncpg.connect(**self._connect_kwargs())
                await self._listen_on(fresh)
            except DRIVER_ERRORS as exc:
                log.warning("LISTEN connection to %s failed: %s", self._target.where, exc)
                continue
            log.info("LISTEN connection to %s is back", self._target.where)
            if self._wakeup is not None:
                self._wakeup()

    async def _counts_loop(self) -> None:
        while True:
            await asyncio.sleep(COUNTS_EVERY)
            try:
                await self.counts()
            except StoreError as exc:
                log.debug("reading the counts failed: %s", exc)

    # -- transactions ---------------------------------------------------------------
    def _require_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise EngineNotRunning("the store is not open; start the engine first")
        return self._pool

    def _accept_counts(self, counts: StoreCounts, seq: int) -> None:
        """Keep the newest counts: a read issued later, or a commit that completed
        later, than the ones kept."""
        if seq > self._counts_seq:
            self._counts, self._counts_seq = counts, seq

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    async def _run(self, op: Op[T], point: str = "", *, alone: bool = False) -> T:
        """Run ``op`` in one transaction. Deadlocks and serialization failures are
        retried for up to ``lock_timeout``; a connection lost before COMMIT is retried
        on a fresh connection (nothing was committed).

        ``alone``: ``op`` runs one statement that is its own transaction (see
        :class:`Txn`); a connection lost while it runs leaves its outcome unknown,
        as a lost COMMIT does (:class:`AmbiguousCommit`)."""
        pool = self._require_pool()
        if self._mode.read_only:
            raise ReadOnlyError(f"the store {self.url} was opened read-only; cannot write")
        deadline = time.monotonic() + max(1.0, self._lock_timeout)
        tries = lost = 0
        while True:
            tries += 1
            committing = False
            now = self.clock()
            try:
                started = time.perf_counter()
                async with pool.acquire() as conn:
                    txn = Txn(conn, now, self._token, self._target.channel, self._fault, alone)
                    transaction = None if alone else conn.transaction()
                    try:
                        if transaction is None:
                            if point:
                                self._fault(f"{point}.before_commit")
                            committing = True
                            result = await op(txn)
                            counts = None
                        else:
                            await transaction.start()
                            result = await op(txn)
                            counts = await txn.finish()
                            if point:
                                self._fault(f"{point}.before_commit")
                            committing = True
                            await transaction.commit()
                    except BaseException as exc:
                        await self._abandon(conn, transaction, exc, committing)
                        raise
                elapsed = time.perf_counter() - started
            except DRIVER_ERRORS as exc:
                if committing and is_connection_lost(exc):
                    message = str(store_error(self._target, exc, committing=True))
                    raise AmbiguousCommit(message, now) from exc
                until = min(deadline, self._give_up_at)  # a stopping engine may cut it short
                retry = isinstance(exc, RETRYABLE) and time.monotonic() < until and tries < 50
                if isinstance(exc, asyncpg.UniqueViolationError) and tries >= 3:
                    retry = False
                if is_connection_lost(exc) and lost < 3:
                    lost += 1
                    retry = True
                if not retry:
                    raise store_error(self._target, exc) from exc
                log.debug("store transaction retried after %s", exc)
                await asyncio.sleep(min(0.2, 0.005 * 2**tries))
                continue
            if point:
                self._fault(f"{point}.after_commit")
            self.transactions += 1
            self._latency.add(elapsed, elapsed)
            if counts is not None:
                self._accept_counts(counts, self._next_seq())
            elif alone:
                self._add_to_counts(txn.deltas)
            return result

    def _add_to_counts(self, deltas: Mapping[tuple[str, str], int]) -> None:
        """Add a committed statement's count changes to ``last_counts`` (the next
        read of the whole cluster's counts replaces them)."""
        if not any(deltas.values()):
            return
        counts = self._counts
        by_queue = {q: dict(c) for q, c in counts.by_queue.items()}
        for (queue, state), n in deltas.items():
            by_queue.setdefault(queue, dict.fromkeys(TaskState, 0))[TaskState(state)] += n
        self._accept_counts(
            StoreCounts(by_queue, counts.paused, counts.all_paused), self._next_seq()
        )

    @staticmethod
    async def _abandon(conn: Any, transaction: Any, exc: BaseException, committing: bool) -> None:
        """Roll back after a failure; a connection in an unknown state (cancelled in
        the middle of a statement, lost) is dropped: the server rolls back, and the
        pool replaces it. (A statement run alone was rolled back by the server.)"""
        if isinstance(exc, asyncio.CancelledError) or is_connection_lost(exc):
            with contextlib.suppress(asyncpg.InterfaceError):  # already closed and released
                conn.terminate()
        elif not committing and transaction is not None:
            try:
                await transaction.rollback()
            except DRIVER_ERRORS:
                with contextlib.suppress(asyncpg.InterfaceError):
                    conn.terminate()

    async def _read(self, sql: str, *args: Any) -> list[Any]:
        """A read on a pooled connection (retried once on a fresh one if the
        connection was lost)."""

        async def fetch(conn: Any) -> list[Any]:
            rows: list[Any] = await conn.fetch(sql, *args)
            return rows

        return await self._on_conn(fetch)

    async def _on_conn(self, fn: Callable[[Any], Awaitable[T]], retry: bool = True) -> T:
        """``fn(connection)`` on a pooled connection, its errors as StoreErrors; with
        ``retry`` (``fn`` may run twice) once more on a fresh connection if the first
        was lost."""
        pool = self._require_pool()
        for attempt in (1, 2):
            try:
                async with pool.acquire() as conn:
                    try:
                        return await fn(conn)
                    except BaseException as exc:
                        if isinstance(exc, asyncio.CancelledError) or is_connection_lost(exc):
                            with contextlib.suppress(asyncpg.InterfaceError):
                                conn.terminate()
                        raise
            except DRIVER_ERRORS as exc:
                if retry and attempt == 1 and is_connection_lost(exc):
                    continue
                raise store_error(self._target, exc) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def counts(self) -> StoreCounts:
        """Every count of the cluster, read now."""
        seq = self._next_seq()
        counts = counts_from_rows(await self._read(READ_COUNTS))
        self._accept_counts(counts, seq)
        return counts

    def latency_p99(self) -> float | None:
        """p99 of recent write transactions (BEGIN to COMMIT, including lock waits)."""
        return percentile(sorted(self._latency.values()), 0.99)
