"""Flow control: rate limits (queue and handler), per-queue concurrency limits and
queue weights, enforced in the claim transaction; changed at runtime; reported as
findings; bad values refused with the setting named."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from engine import Engine, EventKind, SettingsError, TaskState

from .conftest import ROOT, EngineFactory, started, until


def within(count: int, expected: float, share: float = 0.10) -> bool:
    return abs(count - expected) <= share * expected


async def test_rate_limits_hold_over_30_seconds(make_engine: EngineFactory) -> None:
    # The acceptance: a queue rate limit holds within 10 % over 30 s. Two
    # handler limits (a setting, and @task(rate_limit=) overridden by a setting or
    # not) are measured over the same window, beside it.
    window = 30.0
    engine = make_engine(
        workers=4,
        queue_rate_limits={"emails": "10/s"},
        handler_rate_limits={"reports.render": "4/s"},  # wins over its @task(rate_limit=)
    )
    starts: dict[str, list[float]] = {"mail.send": [], "reports.render": [], "sms.send": []}

    @engine.task(name="mail.send", queue="emails")
    async def mail(n: int) -> None:
        starts["mail.send"].append(time.time())

    @engine.task(name="reports.render", rate_limit="1/s")
    async def render(n: int) -> None:
        starts["reports.render"].append(time.time())

    @engine.task(name="sms.send", rate_limit="2/s")
    async def sms(n: int) -> None:
        starts["sms.send"].append(time.time())

    @engine.task(name="free")
    async def free(n: int) -> None:
        pass

    async with engine:
        t0 = time.time()
        ids = await engine.enqueue_many(
            [("mail.send", {"n": n}) for n in range(400)]
            + [("reports.render", {"n": n}) for n in range(160)]
            + [("sms.send", {"n": n}) for n in range(80)]
            + [("free", {"n": n}) for n in range(500)]
        )
        # Unlimited work in the same store runs at full speed meanwhile
        for task_id in ids[-500:]:
            assert (await engine.wait(task_id, timeout=10)).state == TaskState.SUCCEEDED
        assert time.time() - t0 < 5

        # The console says why the emails wait: the rate limit, the backlog, the time to drain
        def emails_finding_after_the_first_claims() -> bool:
            # the monitor ticks once a second: its first finding may predate any claim
            return any(
                "emails is rate-limited" in f.title and "backlog 400," not in f.evidence
                for f in engine.snapshot().findings
            )

        await until(emails_finding_after_the_first_claims, timeout=5, what="the finding")
        finding = next(f for f in engine.snapshot().findings if "emails" in f.title)
        assert finding.title == "Queue emails is rate-limited: 10/s"
        match = re.fullmatch(r"10/s, backlog ([\d,]+), ([\d.]+) s to drain", finding.evidence)
        assert match is not None, finding.evidence
        backlog = int(match.group(1).replace(",", ""))
        assert 250 < backlog < 400
        assert float(match.group(2)) == pytest.approx(backlog / 10, abs=0.1)
        assert "queue_rate_limits" in finding.suggestion
        await asyncio.sleep(max(0.0, t0 + window + 0.2 - time.time()))
        await engine.stop(grace=0)
    counts = {h: sum(1 for s in times if s < t0 + window) for h, times in starts.items()}
    # A full bucket (one second's worth) at the start, then the rate
    expected = {"mail.send": 10 + 10 * window, "reports.render": 4 + 4 * window}
    expected["sms.send"] = 2 + 2 * window
    for handler, count in counts.items():
        assert within(count, expected[handler]), (handler, count, expected[handler])


async def test_a_queue_concurrency_limit_is_never_exceeded(make_engine: EngineFactory) -> None:
    engine = make_engine(workers=8, queue_concurrency={"reports": 2})
    gate = asyncio.Event()
    running = Counter[str]()
    peak = Counter[str]()

    async def hold(queue: str) -> None:
        running[queue] += 1
        peak[queue] = max(peak[queue], running[queue])
        try:
            await gate.wait()
        finally:
            running[queue] -= 1

    @engine.task(name="report", queue="reports")
    async def report(n: int) -> None:
        await hold("reports")

    @engine.task(name="thumb", queue="images")
    async def thumb(n: int) -> None:
        await hold("images")

    async with engine:
        sub = engine.events([EventKind.STARTED])
        # One at a time, with idle workers waiting: each still goes through the limit
        reports = [await engine.enqueue("report", {"n": n}) for n in range(6)]
        await started(sub, 2)
        # Another queue still runs while reports wait for their limit
        images = [await engine.enqueue("thumb", {"n": n}) for n in range(4)]
        await started(sub, 4)
        await until(lambda: running == {"reports": 2, "images": 4}, timeout=5, what="6 running")
        states = Counter([(await engine.get(r)).state for r in reports])
        assert states == {TaskState.RUNNING: 2, TaskState.QUEUED: 4}
        await until(
            lambda: any(
                f.title == "Queue reports runs at its concurrency limit (2)"
                for f in engine.snapshot().findings
            ),
            timeout=5,
            what="the concurrency_limited finding",
        )
        gate.set()  # from now on each task finishes at once
        for task_id in reports + images:
            assert (await engine.wait(task_id, timeout=10)).state == TaskState.SUCCEEDED
    assert peak == {"reports": 2, "images": 4}


async def test_queue_weights_share_the_workers(make_engine: EngineFactory) -> None:
    engine = make_engine(workers=0, queue_weights={"interactive": 3, "bulk": 1})
    seen = Counter[str]()
    enough = asyncio.Event()

    async def work(queue: str) -> None:
        seen[queue] += 1
        if seen.total() >= 1200:
            enough.set()
        await asyncio.sleep(0.005)

    @engine.task(name="click", queue="interactive")
    async def click(n: int) -> None:
        await work("interactive")

    @engine.task(name="export", queue="bulk")
    async def export(n: int) -> None:
        await work("bulk")

    async with engine:
        # Both queues backlogged (bulk's tasks older), then the workers start
        await engine.enqueue_many([("export", {"n": n}) for n in range(2000)])
        await engine.enqueue_many([("click", {"n": n}) for n in range(2000)])
        await engine.set_workers(4)
        await asyncio.wait_for(enough.wait(), 30)
        share = dict(seen)
        await engine.stop(grace=0)
    ratio = share["interactive"] / share["bulk"]
    assert 2.7 <= ratio <= 3.3, share


async def test_a_busy_low_weight_queue_does_not_starve_a_heavy_one(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine(workers=4, queue_weights={"interactive": 3})  # bulk weighs 1
    seen = Counter[str]()

    @engine.task(name="export", queue="bulk")
    async def export(n: int) -> None:
        seen["bulk"] += 1
        await asyncio.sleep(0.005)

    @engine.task(name="click", queue="interactive")
    async def click(n: int) -> int:
        seen["interactive"] += 1
        return seen["bulk"]

    async with engine:
        await engine.enqueue_many([("export", {"n": n}) for n in range(2000)])
        sub = engine.events([EventKind.STARTED])
        await started(sub, 8)  # bulk is busy
        before = seen["bulk"]
        clicks = await engine.enqueue_many([("click", {"n": n}) for n in range(20)])
        records = [await engine.wait(c, timeout=10) for c in clicks]
        await engine.stop(grace=0)
    assert all(r.state == TaskState.SUCCEEDED for r in records)
    # The 20 interactive tasks ran while only a handful of the 2,000 bulk ones did
    # (without weights, equal priorities run oldest first: all of bulk before them)
    bulk_meanwhile = max(r.result for r in records) - before
    assert bulk_meanwhile < 40, bulk_meanwhile


async def test_limits_changed_at_runtime_take_effect(make_engine: EngineFactory) -> None:
    engine = make_engine(
        workers=8, queue_rate_limits={"emails": "1/s"}, queue_concurrency={"reports": 1}
    )
    gate = asyncio.Event()

    @engine.task(name="mail", queue="emails")
    async def mail(n: int) -> None:
        pass

    @engine.task(name="report", queue="reports")
    async def report(n: int) -> None:
        await gate.wait()

    async with engine:
        sub = engine.events([EventKind.STARTED])
        reports = await engine.enqueue_many([("report", {"n": n}) for n in range(5)])
        await started(sub, 1)
        # Concurrency 1 → 3: two more start at once, and no more than that
        changes = engine.events([EventKind.SETTINGS_CHANGED])
        await engine.update_settings(queue_concurrency={"reports": 3})
        await started(sub, 2)
        states = Counter([(await engine.get(r)).state for r in reports])
        assert states == {TaskState.RUNNING: 3, TaskState.QUEUED: 2}
        event = await asyncio.wait_for(changes.get(), 5)
        assert event.message.startswith("queue_concurrency=")
        assert event.data == {"queue_concurrency": {"reports": 3}}
        # Rate 1/s → 1000/s: a backlog that would take 50 s drains at once
        await engine.enqueue_many([("mail", {"n": n}) for n in range(50)])
        await started(sub, 1)
        await engine.update_settings(queue_rate_limits="emails=1000/s")
        assert str(engine.settings.queue_rate_limits) == "emails=1000/s"
        gate.set()
        await engine.drain(timeout=5)
        # Lifting a limit entirely works too
        await engine.update_settings(queue_rate_limits={})
        assert engine.flow_limits() is not None  # the concurrency limit is still there
        await engine.update_settings(queue_concurrency={})
        assert engine.flow_limits() is None


async def test_bad_flow_settings_are_refused_and_nothing_changes(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine(workers=0, queue_rate_limits={"emails": "100/m"})
    bad: list[tuple[str, object, str]] = [
        ("queue_rate_limits", {"emails": "ten per minute"}, "is not understood"),
        ("queue_rate_limits", {"emails": "0/s"}, "the count must be above 0"),
        ("queue_rate_limits", {"emails": "5/fortnight"}, "is not understood"),
        ("queue_rate_limits", "emails", "is not queue=value"),
        ("handler_rate_limits", {"mail.send": 10}, "a rate limit is text"),
        ("queue_weights", {"bulk": 0}, "must be above 0"),
        ("queue_weights", {"bulk": -2}, "must be above 0"),
        ("queue_weights", {"bulk": "heavy"}, "must be a number above 0"),
        ("queue_concurrency", {"reports": 0}, "from 1 to 100,000"),
        ("queue_concurrency", {"reports": 2.5}, "whole number"),
        ("queue_concurrency", {"bad queue!": 2}, "queue"),
        ("queue_rate_limits", {"": "1/s"}, "queue"),
        ("queue_weights", {"x" * 500: 1}, "queue"),
    ]
    async with engine:
        before = engine.settings
        for setting, value, message in bad:
            with pytest.raises(SettingsError) as info:
                await engine.update_settings(**{setting: value})
            assert list(info.value.errors) == [setting], (setting, value)
            assert message in info.value.errors[setting], (setting, value, info.value.errors)
            assert engine.settings == before
        # One bad field refuses the whole change
        with pytest.raises(SettingsError, match="queue_weights"):
            await engine.update_settings(
                queue_rate_limits={"emails": "5/s"}, queue_weights={"bulk": 0}
            )
        assert str(engine.settings.queue_rate_limits) == "emails=100/m"
    # The same rules apply when the engine is made, and to @task(rate_limit=)
    with pytest.raises(SettingsError, match="queue_rate_limits"):
        Engine(engine.store_url, queue_rate_limits={"emails": "fast"})
    with pytest.raises(ValueError, match="rate limit 'fast' is not understood"):
        engine.task(name="mail", rate_limit="fast")(_noop)


async def _noop() -> None:
    pass


def test_a_rate_limit_holds_across_two_processes(db_path: Path, tmp_path: Path) -> None:
    """Two engine processes on one store share one token bucket: together they
    start no more than the limit."""
    rate, window = 20, 3.0
    ledger = tmp_path / "ledger"
    until_at = time.time() + 6.0
    env = {**os.environ, "TASKDECK_QUEUE_RATE_LIMITS": f"emails={rate}/s"}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.flow_worker",
                str(db_path),
                str(ledger),
                str(until_at),
                "300" if i == 0 else "0",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    ready = [json.loads(out.splitlines()[0])["ready"] for out, _ in outputs]
    start = max(ready) + 1.0  # both running, the first second's burst spent
    assert start + window <= until_at, "the processes took too long to start"
    lines = [line.split() for line in ledger.read_text().splitlines()]
    in_window = [(pid, float(at)) for pid, at in lines if start <= float(at) < start + window]
    per_process = Counter(pid for pid, _ in in_window)
    assert len(per_process) == 2, per_process  # both took tasks
    assert within(len(in_window), rate * window), (len(in_window), per_process)
