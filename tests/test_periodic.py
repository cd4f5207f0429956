"""Periodic tasks: ``@engine.periodic(every=…)`` and ``cron=…, tz=…``.

The schedule lives in the store with its next run, so runs come at the right
times, a restart neither skips nor doubles one, a downtime is made up once, and
several engine processes on one store enqueue each run exactly once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from engine import Engine, Event, EventKind, Subscription, TaskState
from engine.schedule import next_run

from .conftest import ROOT, EngineFactory

BERLIN = ZoneInfo("Europe/Berlin")
ON_TIME = 0.1  # seconds after its due time a periodic run may start at low load


def ticking(engine: Engine, every: float, runs: list[float], name: str = "tick") -> asyncio.Event:
    """Register a periodic handler that notes when each run starts; the event is set
    at every run (clear it to wait for the next)."""
    ran = asyncio.Event()

    @engine.periodic(every=every, name=name)
    async def tick() -> None:
        runs.append(time.time())
        ran.set()

    return ran


async def next_run_of(ran: asyncio.Event, timeout: float = 5.0) -> None:
    await asyncio.wait_for(ran.wait(), timeout)
    ran.clear()


async def test_every_runs_on_its_grid(make_engine: EngineFactory) -> None:
    engine = make_engine(workers=2, poll_interval=60.0)
    runs: list[float] = []
    ran = ticking(engine, 0.3, runs)
    async with engine:
        (info,) = await engine.schedules()
        first = info.next_run
        assert info.rule == "every 0.3 s" and not info.paused and info.last_run is None
        while len(runs) < 4:
            await next_run_of(ran)
        tasks = await engine.tasks(handler="tick")
    # Each run starts at first + k × every (the grid does not drift with lateness)
    lateness = [runs[k] - (first + 0.3 * k) for k in range(4)]
    assert all(0 <= late < ON_TIME for late in lateness), lateness
    assert len(tasks) >= 4


async def test_a_restart_between_two_runs_neither_skips_nor_doubles(
    make_engine: EngineFactory,
) -> None:
    every = 0.4
    runs: list[float] = []
    first = make_engine(workers=1)
    ran = ticking(first, every, runs)
    async with first:
        await next_run_of(ran)
        (info,) = await first.schedules()
        due = info.next_run
    assert time.time() < due, "the restart must fall between two runs"
    # A new engine on the same store, with the same definition, takes over the grid
    second = make_engine(workers=1)
    ran = ticking(second, every, runs)
    async with second:
        (info,) = await second.schedules()
        assert info.next_run == due  # an unchanged definition keeps its next run
        await next_run_of(ran)
        assert 0 <= runs[1] - due < ON_TIME  # not skipped
        await next_run_of(ran)
        assert 0 <= runs[2] - (due + every) < ON_TIME
        tasks = await second.tasks(handler="tick")
    assert len(runs) == 3 and len(tasks) == 3  # not doubled


async def test_a_downtime_over_several_due_times_is_made_up_once(
    make_engine: EngineFactory,
) -> None:
    every = 0.25
    runs: list[float] = []
    first = make_engine(workers=1)
    ran = ticking(first, every, runs)
    async with first:
        await next_run_of(ran)
        (info,) = await first.schedules()
        missed_from = info.next_run
    # No engine runs while three due times pass
    await asyncio.sleep(max(0.0, missed_from + 2.5 * every - time.time()))
    second = make_engine(workers=1)
    ran = ticking(second, every, runs)
    async with second:
        started = time.time()
        await next_run_of(ran)  # the make-up run, at once
        assert runs[1] - started < ON_TIME
        (info,) = await second.schedules()
        # The next run is back on the grid, the first time after now: the missed ones
        # are not replayed
        steps = (info.next_run - missed_from) / every
        assert steps == pytest.approx(round(steps)) and round(steps) >= 3
        assert started < info.next_run <= runs[1] + every
        await next_run_of(ran)
        assert 0 <= runs[2] - info.next_run < ON_TIME
        tasks = await second.tasks(handler="tick")
    assert len(tasks) == 3  # first run, one make-up run, the next regular run


def test_two_processes_on_one_store_enqueue_each_run_exactly_once(db_path: Path) -> None:
    every = 0.3
    until = time.time() + 4.5  # both stop at the same moment
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.schedule_worker", str(db_path), str(every), str(until)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    reports = [json.loads(out.splitlines()[-1]) for out, _ in outputs]
    conn = sqlite3.connect(db_path)
    try:
        query = "SELECT created_at FROM tasks WHERE handler = 'tick' ORDER BY created_at"
        created = [r[0] for r in conn.execute(query)]
        (last_due,) = conn.execute("SELECT last_run FROM schedules WHERE name = 'tick'").fetchone()
    finally:
        conn.close()
    # Every run that was enqueued is one task, whichever process enqueued it
    assert sum(r["fired"] for r in reports) == len(created)
    assert all(r["fired"] > 0 for r in reports), reports  # both took part in the race
    assert len(created) >= 8
    # No due time enqueued twice: two tasks of one run would be milliseconds apart …
    gaps = [b - a for a, b in itertools.pairwise(created)]
    assert min(gaps) > every / 3, gaps
    # … and none skipped: one task per due time from the first run to the last one
    assert len(created) == round((last_due - created[0]) / every) + 1, gaps


async def test_cron_next_run_is_read_in_its_time_zone(make_engine: EngineFactory) -> None:
    def at(text: str) -> float:
        return dt.datetime.fromisoformat(text).timestamp()

    def local(ts: float, tz: ZoneInfo | dt.timezone = BERLIN) -> str:
        return dt.datetime.fromtimestamp(ts, tz).isoformat()

    daily = "0 2 * * *"
    # Winter (UTC+1) and summer (UTC+2): 02:00 local is 01:00 / 00:00 UTC
    noon = at("2026-01-15T12:00:00+00:00")
    assert local(next_run(None, daily, "Europe/Berlin", noon, noon)) == "2026-01-16T02:00:00+01:00"
    noon = at("2026-07-15T12:00:00+00:00")
    assert local(next_run(None, daily, "Europe/Berlin", noon, noon)) == "2026-07-16T02:00:00+02:00"
    assert local(next_run(None, daily, "UTC", noon, noon), dt.UTC) == "2026-07-16T02:00:00+00:00"
    # Already past 02:00 Berlin (00:30 UTC in summer) but not yet 02:00 UTC
    early = at("2026-07-15T00:30:00+00:00")
    assert (
        local(next_run(None, daily, "Europe/Berlin", early, early)) == "2026-07-16T02:00:00+02:00"
    )
    assert local(next_run(None, daily, "UTC", early, early), dt.UTC) == "2026-07-15T02:00:00+00:00"
    # The night clocks go forward there is no 02:00: it runs once, at 03:00 summer time
    night = at("2026-03-28T02:00:00+01:00")
    then = next_run(None, daily, "Europe/Berlin", night, night)
    assert local(then) == "2026-03-29T03:00:00+02:00"
    assert local(next_run(None, daily, "Europe/Berlin", then, then)) == "2026-03-30T02:00:00+02:00"
    # The night clocks go back 02:00 comes twice: the daily run still runs once
    night = at("2026-10-24T02:00:00+02:00")
    then = next_run(None, daily, "Europe/Berlin", night, night)
    assert local(then) == "2026-10-25T02:00:00+02:00"
    assert local(next_run(None, daily, "Europe/Berlin", then, then)) == "2026-10-26T02:00:00+01:00"

    # engine.schedules() shows the next run of each stored schedule
    engine = make_engine(workers=0)

    @engine.task(name="report")
    async def report(region: str) -> None:
        pass

    zones = {"report-berlin": "Europe/Berlin", "report-utc": "UTC"}
    for name, zone in zones.items():
        engine.add_schedule("report", cron=daily, tz=zone, name=name, payload={"region": zone})
    async with engine:
        now = time.time()
        shown = {s.name: s for s in await engine.schedules()}
    for name, zone in zones.items():
        info = shown[name]
        assert info.rule == f"cron 0 2 * * * ({zone})" and info.handler == "report"
        assert info.next_run == _next_2am(ZoneInfo(zone), now)
    assert shown["report-berlin"].next_run != shown["report-utc"].next_run


def _next_2am(tz: ZoneInfo, now: float) -> float:
    """The first 02:00 wall-clock time in ``tz`` after ``now`` (computed without cron)."""
    today = dt.datetime.fromtimestamp(now, tz).date()
    for days in range(3):
        day = today + dt.timedelta(days=days)
        candidate = dt.datetime.combine(day, dt.time(2, 0), tzinfo=tz).timestamp()
        if candidate > now:
            return candidate
    raise AssertionError("no 02:00 within three days")


async def test_bad_schedule_definitions_are_refused(make_engine: EngineFactory) -> None:
    engine = make_engine(workers=0)

    async def job() -> None:
        pass

    with pytest.raises(ValueError, match="invalid cron expression '61 \\* \\* \\* \\*'"):
        engine.periodic(cron="61 * * * *")
    with pytest.raises(ValueError, match="five fields"):
        engine.periodic(cron="0 2 * *")
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        engine.periodic(cron="0 2 * * *", tz="Mars/Olympus")
    with pytest.raises(ValueError, match="every must be a number of seconds above 0"):
        engine.periodic(every=0)
    with pytest.raises(TypeError, match="exactly one"):
        engine.periodic(every=5, cron="0 2 * * *")
    with pytest.raises(TypeError, match="exactly one"):
        engine.periodic()
    async with engine:
        assert await engine.schedules() == []
        with pytest.raises(LookupError, match="no schedule named 'nope'"):
            await engine.trigger_schedule("nope")
        with pytest.raises(LookupError, match="no schedule named 'nope'"):
            await engine.pause_schedule("nope")


async def test_pause_resume_and_trigger(make_engine: EngineFactory) -> None:
    every = 0.25
    engine = make_engine(workers=1)
    runs: list[float] = []
    ran = ticking(engine, every, runs)
    async with engine:
        changes = engine.events([EventKind.SCHEDULE_CHANGED])
        await next_run_of(ran)
        # Paused: no runs, whatever time passes
        assert await engine.pause_schedule("tick") is True
        assert await engine.pause_schedule("tick") is False  # already paused
        (info,) = await engine.schedules()
        assert info.paused
        paused_at = time.time()
        await asyncio.sleep(2.5 * every)  # two due times pass while paused
        assert len(runs) == 1
        # Trigger: one run now, even while paused; the schedule itself stays as it was
        task_id = await engine.trigger_schedule("tick")
        record = await engine.wait(task_id, timeout=5)
        assert record.state == TaskState.SUCCEEDED and record.handler == "tick"
        assert len(runs) == 2
        (after_trigger,) = await engine.schedules()
        assert after_trigger.next_run == info.next_run and after_trigger.paused
        assert after_trigger.last_task_id == task_id
        # Resume: runs again from the next time after now; the missed ones are not made up
        assert await engine.resume_schedule("tick") is True
        assert await engine.resume_schedule("tick") is False
        (resumed,) = await engine.schedules()
        assert not resumed.paused and resumed.next_run > time.time()
        assert resumed.next_run > paused_at + 2 * every
        ran.clear()
        await next_run_of(ran)
        assert 0 <= runs[-1] - resumed.next_run < ON_TIME
        assert len(runs) == 3
        assert [e.message for e in _drain(changes)] == [
            "schedule tick paused",
            "schedule tick resumed",
        ]


async def test_schedules_show_the_last_run_and_its_state(make_engine: EngineFactory) -> None:
    engine = make_engine(workers=1)
    outcome = asyncio.Event()

    @engine.periodic(every=0.5, name="flaky", retries=0, queue="nightly", priority=7)
    async def flaky() -> None:
        outcome.set()
        raise RuntimeError("boom")

    async with engine:
        (before,) = await engine.schedules()
        assert before.name == "flaky" and before.handler == "flaky"
        assert before.queue == "nightly" and before.every == 0.5 and before.cron is None
        assert before.last_run is None and before.last_task_id is None
        assert before.last_state is None
        await asyncio.wait_for(outcome.wait(), 5)
        await engine.pause_schedule("flaky")
        (info,) = await engine.schedules()
        assert info.last_task_id is not None
        record = await engine.wait(info.last_task_id, timeout=5)
        assert record.state == TaskState.FAILED
        assert record.queue == "nightly" and record.priority == 7
        (info,) = await engine.schedules()
        assert info.last_state == "failed"
        assert info.last_run == before.next_run  # the due time of the run
        assert info.next_run == before.next_run + 0.5


async def test_a_changed_definition_replaces_the_stored_schedule_on_restart(
    make_engine: EngineFactory,
) -> None:
    old = make_engine(workers=0)

    @old.periodic(every=3600, name="digest", payload={"to": "ops"})
    async def digest(to: str) -> None:
        pass

    async with old:
        (info,) = await old.schedules()
        assert info.every == 3600 and info.next_run > time.time() + 3500

    # The code changes: a different interval and payload
    new = make_engine(workers=1)
    ran = asyncio.Event()
    seen: list[str] = []

    @new.periodic(every=0.2, name="digest", payload={"to": "team"})
    async def digest2(to: str) -> None:
        seen.append(to)
        ran.set()

    changes = new.events([EventKind.SCHEDULE_CHANGED])
    async with new:
        (info,) = await new.schedules()
        assert info.every == 0.2 and info.rule == "every 0.2 s"
        assert info.next_run < time.time() + 0.2  # recomputed from the new rule
        await asyncio.wait_for(ran.wait(), 5)
        assert seen[0] == "team"
    assert [e.message for e in _drain(changes)] == ["schedule digest: every 0.2 s"]

    # Restarting with the same code changes nothing
    same = make_engine(workers=0)

    @same.periodic(every=0.2, name="digest", payload={"to": "team"})
    async def digest3(to: str) -> None:
        pass

    changes = same.events([EventKind.SCHEDULE_CHANGED])
    async with same:
        (again,) = await same.schedules()
        assert again.every == 0.2 and again.next_run >= info.next_run
    assert _drain(changes) == []


def _drain(sub: Subscription) -> list[Event]:
    return [e for e in (sub.get_nowait() for _ in range(sub.pending())) if e is not None]
