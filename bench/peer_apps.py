"""The four task queues of bench/peers.py, each as the same three roles: ``setup`` (create
its tables in a fresh store), ``consume`` (a worker process; its handlers keep a
:class:`bench_app.Tally`) and ``produce`` (a producer process; prints when it started and
finished enqueueing). Every peer has the same two handlers: ``noop(n)`` and
``timed(t0)`` (see bench_app.py). Taskdeck's consumer is ``taskdeck run --headless`` on
bench_app.py, so it has no ``consume`` here.

The peers' packages are imported only inside these functions: a peer that is not
installed is skipped by bench/peers.py, not an import error.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections.abc import Callable
from typing import Any

from bench_app import PING, Tally

from engine import Engine

#: Huey's consumer polls its SQLite table; a 1 ms poll without back-off is its fastest.
HUEY_POLL = 0.001


class Clock:
    """The producer's clock: when its first enqueue began and its last one ended, and
    the pause between timed tasks (about 10 ms, jittered: low load)."""

    def __init__(self) -> None:
        self.t_start = self.t_end = 0.0
        self._pace = random.Random(15)

    def start(self) -> None:
        self.t_start = time.monotonic()

    def end(self) -> None:
        self.t_end = time.monotonic()

    def pace(self) -> float:
        return 0.01 * self._pace.uniform(0.5, 1.5)


def batches(n: int, size: int = 500) -> list[range]:
    return [range(i, min(n, i + size)) for i in range(0, n, size)]


def noop_tally(tally: Tally | None) -> Callable[..., None]:
    def hit(**kwargs: Any) -> None:
        if tally is not None:
            tally.hit(**kwargs)

    return hit


# -- Taskdeck -----------------------------------------------------------------------
async def taskdeck_setup(store: str) -> None:
    async with Engine(store, workers=0, strict_handlers=False):
        pass


async def taskdeck_produce(store: str, mode: str, n: int, clock: Clock) -> None:
    async with Engine(store, workers=0, strict_handlers=False, name="bench-producer") as engine:
        clock.start()
        if mode == "ping":
            await engine.enqueue("noop", {"n": PING})
        elif mode == "batch":
            for r in batches(n):
                await engine.enqueue_many([("noop", {"n": i}) for i in r])
        elif mode == "single":
            for i in range(n):
                await engine.enqueue("noop", {"n": i})
        else:
            for _ in range(n):
                await engine.enqueue("timed", {"t0": time.monotonic()})
                await asyncio.sleep(clock.pace())
        clock.end()


# -- Huey (SqliteHuey) ------------------------------------------------------------------
def huey_app(store: str, tally: Tally | None) -> tuple[Any, Any, Any]:
    from huey import SqliteHuey

    huey = SqliteHuey("bench", filename=store)
    hit = noop_tally(tally)

    @huey.task(name="noop")
    def noop(n: int) -> None:
        hit(n=n)

    @huey.task(name="timed")
    def timed(t0: float) -> None:
        hit(t0=t0)

    return huey, noop, timed


def huey_setup(store: str) -> None:
    huey_app(store, None)  # SqliteHuey creates its tables when it opens the file


def huey_consume(store: str, tally: Tally, workers: int) -> None:
    huey, _, _ = huey_app(store, tally)
    consumer = huey.create_consumer(
        workers=workers,
        worker_type="thread",
        initial_delay=HUEY_POLL,
        backoff=1.0,
        max_delay=HUEY_POLL,
        periodic=False,
    )
    consumer.run()  # SIGTERM stops it


def huey_produce(store: str, mode: str, n: int, clock: Clock) -> None:
    _, noop, timed = huey_app(store, None)
    clock.start()
    if mode == "ping":
        noop(PING)
    elif mode == "single":
        for i in range(n):
            noop(i)
    elif mode == "latency":
        for _ in range(n):
            timed(time.monotonic())
            time.sleep(clock.pace())
    else:
        raise ValueError(f"Huey has no batch enqueue; mode {mode!r}")
    clock.end()


# -- pgqueuer ----------------------------------------------------------------------------
async def pgqueuer_queries(dsn: str) -> tuple[Any, Any]:
    import asyncpg
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.queries import Queries

    conn = await asyncpg.connect(dsn)
    return conn, Queries(AsyncpgDriver(conn))


async def pgqueuer_setup(dsn: str) -> None:
    conn, queries = await pgqueuer_queries(dsn)
    try:
        await queries.install()
    finally:
        await conn.close()


async def pgqueuer_consume(dsn: str, tally: Tally, workers: int) -> None:
    from pgqueuer.models import Job
    from pgqueuer.qm import QueueManager

    conn, queries = await pgqueuer_queries(dsn)
    qm = QueueManager(queries)

    @qm.entrypoint("noop")
    async def noop(job: Job) -> None:
        tally.hit(n=int(job.payload or b"0"))

    @qm.entrypoint("timed")
    async def timed(job: Job) -> None:
        tally.hit(t0=float(job.payload or b"0"))

    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, qm.shutdown.set)
    try:
        await qm.run()  # the defaults: batches of 10, no cap on concurrent jobs
    finally:
        await conn.close()


async def pgqueuer_produce(dsn: str, mode: str, n: int, clock: Clock) -> None:
    conn, queries = await pgqueuer_queries(dsn)
    try:
        clock.start()
        if mode == "ping":
            await queries.enqueue("noop", str(PING).encode())
        elif mode == "batch":
            for r in batches(n):
                await queries.enqueue(["noop"] * len(r), [b"%d" % i for i in r], [0] * len(r))
        elif mode == "single":
            for i in range(n):
                await queries.enqueue("noop", b"%d" % i)
        else:
            for _ in range(n):
                await queries.enqueue("timed", repr(time.monotonic()).encode())
                await asyncio.sleep(clock.pace())
        clock.end()
    finally:
        await conn.close()


# -- procrastinate -----------------------------------------------------------------------
def procrastinate_app(dsn: str, tally: Tally | None) -> tuple[Any, Any, Any]:
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=dsn))
    hit = noop_tally(tally)

    @app.task(name="noop")
    async def noop(n: int) -> None:
        hit(n=n)

    @app.task(name="timed")
    async def timed(t0: float) -> None:
        hit(t0=t0)

    return app, noop, timed


async def procrastinate_setup(dsn: str) -> None:
    app, _, _ = procrastinate_app(dsn, None)
    async with app.open_async():
        await app.schema_manager.apply_schema_async()


async def procrastinate_consume(dsn: str, tally: Tally, workers: int) -> None:
    app, _, _ = procrastinate_app(dsn, tally)
    async with app.open_async():
        # listen_notify and the polling fallback at their defaults; SIGTERM stops it
        await app.run_worker_async(concurrency=workers)


async def procrastinate_produce(dsn: str, mode: str, n: int, clock: Clock) -> None:
    app, noop, timed = procrastinate_app(dsn, None)
    async with app.open_async():
        clock.start()
        if mode == "ping":
            await noop.defer_async(n=PING)
        elif mode == "batch":
            for r in batches(n):
                await noop.batch_defer_async(*({"n": i} for i in r))
        elif mode == "single":
            for i in range(n):
                await noop.defer_async(n=i)
        else:
            for _ in range(n):
                await timed.defer_async(t0=time.monotonic())
                await asyncio.sleep(clock.pace())
        clock.end()


SETUP: dict[str, Callable[[str], Any]] = {
    "taskdeck": taskdeck_setup,
    "huey": huey_setup,
    "pgqueuer": pgqueuer_setup,
    "procrastinate": procrastinate_setup,
}
CONSUME: dict[str, Callable[[str, Tally, int], Any]] = {
    "huey": huey_consume,
    "pgqueuer": pgqueuer_consume,
    "procrastinate": procrastinate_consume,
}
PRODUCE: dict[str, Callable[[str, str, int, Clock], Any]] = {
    "taskdeck": taskdeck_produce,
    "huey": huey_produce,
    "pgqueuer": pgqueuer_produce,
    "procrastinate": procrastinate_produce,
}


def call(fn: Callable[..., Any], *args: Any) -> None:
    """Run a role's function, sync or async."""
    result = fn(*args)
    if asyncio.iscoroutine(result):
        asyncio.run(result)
