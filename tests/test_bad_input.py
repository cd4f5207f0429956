"""Bad input: a specific error (what was wrong, what is allowed), nothing written, engine fine."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pytest

from engine import Engine, InvalidTransition, SettingsError, TaskState

from .conftest import EngineFactory


def register(engine: Engine) -> None:
    @engine.task(name="images.resize")
    async def resize(job_id: str, width: int, height: int) -> dict[str, str]:
        return {"job_id": job_id}

    @engine.task(name="images.rotate")
    async def rotate(job_id: str) -> None: ...

    @engine.task(name="bulk")
    async def bulk(data: Any = None) -> None: ...


GOOD = {"job_id": "a", "width": 8, "height": 6}


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        # unknown handler, with the closest names
        (
            lambda e: e.enqueue("images.resise", GOOD),
            LookupError,
            "unknown handler 'images.resise'; did you mean 'images.resize'",
        ),
        # priority out of range, wrong type, unknown name
        (lambda e: e.enqueue("images.resize", GOOD, priority=10), ValueError, r"0 \(lowest\) to 9"),
        (lambda e: e.enqueue("images.resize", GOOD, priority=-1), ValueError, r"0 \(lowest\) to 9"),
        (lambda e: e.enqueue("images.resize", GOOD, priority=5.5), TypeError, "got the float 5.5"),
        (lambda e: e.enqueue("images.resize", GOOD, priority=True), TypeError, "boolean"),
        (
            lambda e: e.enqueue("images.resize", GOOD, priority="urgent"),
            ValueError,
            r"low \(2\), normal \(5\), high \(7\), critical \(9\)",
        ),
        # payloads
        (
            lambda e: e.enqueue("bulk", {"data": {"items": [1, 2, {3}]}}),
            ValueError,
            r"payload is not JSON-serialisable at \$.data.items\[2\]: set",
        ),
        (lambda e: e.enqueue("bulk", {"data": math.nan}), ValueError, r"nan at \$.data"),
        (lambda e: e.enqueue("bulk", {"data": [math.inf]}), ValueError, r"inf at \$.data\[0\]"),
        (
            lambda e: e.enqueue("bulk", {"data": "x" * 2_000_000}),
            ValueError,
            "payload is 2,000,011 bytes as JSON; the limit is 1,048,576 bytes",
        ),
        (
            lambda e: e.enqueue("images.resize", {"job_id": "a", "width": 1}),
            TypeError,
            "missing 'height'",
        ),
        (
            lambda e: e.enqueue("images.resize", {**GOOD, "depth": 3}),
            TypeError,
            "unexpected 'depth'",
        ),
        (lambda e: e.enqueue("images.resize", [1, 2, 3]), TypeError, "must be a JSON object"),
        # delays and due times
        (
            lambda e: e.enqueue("images.rotate", {"job_id": "a"}, delay=-1),
            ValueError,
            "delay must be 0 or more seconds",
        ),
        (
            lambda e: e.enqueue("images.rotate", {"job_id": "a"}, delay=math.nan),
            ValueError,
            "finite number of seconds",
        ),
        (lambda e: e.enqueue("images.rotate", {"job_id": "a"}, delay=1e12), ValueError, "10 years"),
        (
            lambda e: e.enqueue("images.rotate", {"job_id": "a"}, run_at=dt.datetime(2030, 1, 1)),
            ValueError,
            "timezone-aware",
        ),
        (
            lambda e: e.enqueue("images.rotate", {"job_id": "a"}, run_at="tomorrow"),
            TypeError,
            "timezone-aware datetime",
        ),
        # queue names
        (
            lambda e: e.enqueue("images.rotate", {"job_id": "a"}, queue=""),
            ValueError,
            "1–64 characters",
        ),
        (
            lambda e: e.enqueue("images.rotate", {"job_id": "a"}, queue="q" * 500),
            ValueError,
            "1–64 characters",
        ),
        (
            lambda e: e.enqueue("images.rotate", {"job_id": "a"}, queue="'; DROP TABLE tasks;--"),
            ValueError,
            "not allowed",
        ),
        (
            lambda e: e.enqueue("images.rotate", {"job_id": "a"}, queue="   "),
            ValueError,
            "not allowed",
        ),
        # batch enqueue: the item is named, nothing is written
        (
            lambda e: e.enqueue_many(
                [("images.rotate", {"job_id": "a"})] * 3 + [("images.rotate", {})]
            ),
            TypeError,
            "item 3: payload does not match",
        ),
        (
            lambda e: e.enqueue_many([("images.rotate", {"job_id": "a"}, {"prio": 3})]),
            TypeError,
            "'prio'; did you mean 'priority'",
        ),
        # unknown task ids
        (lambda e: e.get("4242"), LookupError, "no task with id '4242'"),
        (lambda e: e.cancel("abc"), LookupError, "task ids are positive integers"),
        (lambda e: e.reprioritize("777", 3), LookupError, "no task with id '777'"),
        (lambda e: e.retry("0"), LookupError, "no task with id"),
        (lambda e: e.wait("999", timeout=-1), ValueError, "timeout must be 0 or more seconds"),
        # workers
        (lambda e: e.set_workers(-1), ValueError, "from 0 .* to 256 .max_workers."),
        (lambda e: e.set_workers(10_000), ValueError, "to 256 .max_workers.; got 10000"),
        (lambda e: e.set_workers("four"), TypeError, "got str 'four'"),
        (lambda e: e.set_workers(2.5), TypeError, "whole number"),
        # settings: every bad field named
        (
            lambda e: e.update_settings(lease_ttl=-5, result_tll=3),
            SettingsError,
            "(?s)lease_ttl: must be from 0.5.*"
            "result_tll: unknown setting; did you mean 'result_ttl'",
        ),
        # purge only finished tasks
        (lambda e: e.purge("queued"), ValueError, "only finished tasks can be purged"),
    ],
)
async def test_bad_input_is_refused_clearly(
    make_engine: EngineFactory, call: Any, error: type[Exception], message: str
) -> None:
    engine = make_engine(workers=1)
    register(engine)
    async with engine:
        before = engine.snapshot().counts
        settings = engine.settings
        with pytest.raises(error, match=message):
            await call(engine)
        # nothing written, nothing changed, still running
        assert engine.snapshot().counts == before
        assert engine.settings == settings
        assert engine.running
        ok = await engine.enqueue("images.rotate", {"job_id": "still works"})
        assert (await engine.wait(ok, timeout=5)).state == TaskState.SUCCEEDED


async def test_cancel_of_a_finished_task_says_why(make_engine: EngineFactory) -> None:
    engine = make_engine(workers=1)
    register(engine)
    async with engine:
        tid = await engine.enqueue("images.rotate", {"job_id": "x"})
        await engine.wait(tid, timeout=5)
        with pytest.raises(InvalidTransition, match="already succeeded; nothing to cancel"):
            await engine.cancel(tid)
        with pytest.raises(InvalidTransition, match="only queued or scheduled tasks can change"):
            await engine.reprioritize(tid, 9)


def test_bad_engine_arguments() -> None:
    with pytest.raises(ValueError, match=r"to 256 \(max_workers\)"):
        Engine("x.db", workers=-3)
    with pytest.raises(TypeError, match="got bool True"):
        Engine("x.db", workers=True)  # type: ignore[arg-type]
    with pytest.raises(SettingsError, match="leese_ttl: unknown setting; did you mean 'lease_ttl'"):
        Engine("x.db", leese_ttl=3)
    with pytest.raises(TypeError, match="not both"):
        Engine("x.db", encryption_key="a", keys=["b"])


async def test_non_strict_producer_stores_unknown_handlers(make_engine: EngineFactory) -> None:
    producer = make_engine(workers=0, strict_handlers=False)
    async with producer:
        tid = await producer.enqueue("reports.nightly", {"day": "mon"}, priority="high")
        record = await producer.get(tid)
        assert (record.handler, record.priority, record.state) == ("reports.nightly", 7, "queued")
        with pytest.raises(ValueError, match="handler name"):
            await producer.enqueue("bad name!", {})


async def test_calls_before_start_say_how_to_start(make_engine: EngineFactory) -> None:
    engine = make_engine(workers=1)
    register(engine)
    with pytest.raises(RuntimeError, match="async with engine"):
        await engine.enqueue("images.rotate", {"job_id": "a"})
