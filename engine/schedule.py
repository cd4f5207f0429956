"""Periodic tasks: ``@engine.periodic(every=300)`` or ``cron="0 2 * * *", tz="UTC"``.

Schedules live in the store, with the time of their next run. Whichever engine
process finds a schedule due enqueues its task and moves ``next_run`` on *in the
same transaction*, so with several processes on one store each run is enqueued
exactly once, and a restart neither skips a run nor doubles one. A run missed while
no engine was running is made up once on start (not once per missed time).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from engine.checks import check_handler_name
from engine.events import EventBus
from engine.model import ScheduleInfo, schedule_rule
from engine.services import TimedService
from engine.settings import Settings
from engine.store.base import Store

MAX_EVERY = 366 * 86400.0


def check_every(every: object) -> float:
    if isinstance(every, bool) or not isinstance(every, int | float):
        raise TypeError(f"every must be a number of seconds above 0; got {type(every).__name__}")
    seconds = float(every)
    if not (0 < seconds <= MAX_EVERY) or math.isnan(seconds):
        raise ValueError(
            f"every must be a number of seconds above 0 and at most {MAX_EVERY:,.0f} "
            f"(a year); got {every!r}"
        )
    return seconds


def check_tz(tz: object) -> str:
    if not isinstance(tz, str) or not tz:
        raise TypeError(f"tz must be an IANA time zone name such as 'UTC'; got {tz!r}")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {tz!r}; use an IANA name such as 'UTC', 'Europe/Berlin' or "
            "'America/New_York'"
        ) from None
    return tz


def check_cron(cron: object) -> str:
    if not isinstance(cron, str):
        raise TypeError(f"cron must be a string such as '0 2 * * *'; got {type(cron).__name__}")
    text = " ".join(cron.split())
    if len(text.split(" ")) != 5 or not croniter.is_valid(text):
        raise ValueError(
            f"invalid cron expression {cron!r}: use five fields 'minute hour day-of-month "
            "month day-of-week', e.g. '0 2 * * *' (02:00 daily) or '*/15 * * * *'"
        )
    return text


def next_run(every: float | None, cron: str | None, tz: str, due: float, now: float) -> float:
    """When a schedule runs next after a run due at ``due`` (made up at ``now``).

    Intervals keep their grid (due + k·every, the first one after now); cron
    expressions are read in their time zone.
    """
    if every is not None:
        if due + every > now:
            return due + every
        return due + every * (math.floor((now - due) / every) + 1)
    assert cron is not None
    zone = ZoneInfo(tz)
    times = croniter(cron, dt.datetime.fromtimestamp(max(due, now), zone))
    following = float(times.get_next(float))
    # Where clocks go back an hour, its wall-clock times come twice. As in cron, a job at
    # a fixed minute and hour runs at the first of them only (a daily 02:30 job runs
    # once that night); jobs with a wildcard there run by the clock as it reads.
    minute, hour = cron.split()[:2]
    while "*" not in minute + hour and dt.datetime.fromtimestamp(following, zone).fold:
        following = float(times.get_next(float))
    return following


@dataclass(frozen=True)
class ScheduleSpec:
    """A periodic task as defined in code, validated."""

    name: str
    handler: str
    payload: dict[str, Any]
    queue: str
    priority: int
    retries: int
    every: float | None = None
    cron: str | None = None
    tz: str = "UTC"

    def first_run(self, now: float) -> float:
        if self.every is not None:
            return now + self.every
        return next_run(None, self.cron, self.tz, now, now)

    @property
    def rule(self) -> str:
        return schedule_rule(self.every, self.cron, self.tz)


def make_spec(
    handler: str,
    *,
    every: object = None,
    cron: object = None,
    tz: object = "UTC",
    name: str | None = None,
    payload: dict[str, Any],
    queue: str,
    priority: int,
    retries: int,
) -> ScheduleSpec:
    if (every is None) == (cron is None):
        raise TypeError(
            "a periodic task needs every=<seconds> or cron='<expression>' (one of them)"
        )
    zone = check_tz(tz)
    return ScheduleSpec(
        name=check_handler_name(name or handler),
        handler=handler,
        payload=payload,
        queue=queue,
        priority=priority,
        retries=retries,
        every=None if every is None else check_every(every),
        cron=None if cron is None else check_cron(cron),
        tz=zone,
    )


class Scheduler(TimedService):
    """Enqueues due periodic runs, on a timer set for the next one (see
    :class:`~engine.services.TimedService`); :meth:`wake` after a schedule changed."""

    name = "periodic"

    def __init__(
        self,
        store: Store,
        settings: Callable[[], Settings],
        bus: EventBus,
        clock: Callable[[], float],
        on_fired: Callable[[list[tuple[str, str, str]]], None],
    ) -> None:
        super().__init__(store, settings, bus, clock)
        self.on_fired = on_fired
        self.fired = 0

    async def run_once(self) -> None:
        fired, self.next_due = await self.store.fire_schedules(next_run)
        if fired:
            self.fired += len(fired)
            self.on_fired(fired)


__all__ = ["ScheduleInfo", "ScheduleSpec", "Scheduler", "next_run"]
