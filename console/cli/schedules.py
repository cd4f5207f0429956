"""``taskdeck schedules`` and ``taskdeck schedule pause|resume|run NAME``."""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from typing import Any

from console.cli.common import Access, with_store
from console.cli.errors import Refused
from console.cli.options import add_note
from engine import Engine


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    schedules = sub.add_parser("schedules", parents=[common], help="list periodic schedules")
    schedules.add_argument("--json", action="store_true", help="print JSON")
    schedules.set_defaults(func=cmd_schedules)

    schedule = sub.add_parser("schedule", parents=[common], help="pause, resume or run one")
    schedule.add_argument("action", choices=["pause", "resume", "run"], help="what to do")
    schedule.add_argument("name", help="schedule name (see taskdeck schedules)")
    add_note(schedule)
    schedule.set_defaults(func=cmd_schedule)


def when(at: float | None, now: float) -> str:
    """``in 12s``, ``4m ago``, ``never``."""
    if at is None:
        return "never"
    delta = at - now
    size = abs(delta)
    text = (
        f"{size:,.0f}s"
        if size < 120
        else f"{size / 60:,.0f}m"
        if size < 7200
        else f"{size / 3600:,.1f}h"
    )
    return f"in {text}" if delta >= 0 else f"{text} ago"


def cmd_schedules(args: argparse.Namespace) -> int:
    async def work(engine: Engine) -> int:
        rows = await engine.schedules()
        if args.json:
            print(json.dumps({"schedules": [asdict(r) | {"rule": r.rule} for r in rows]}))
            return 0
        if not rows:
            print("no schedules (define one with @engine.periodic(every=300))")
            return 0
        now = time.time()
        print(f"{'name':<28} {'rule':<28} {'next':>10} {'last':>10}  last state")
        for r in rows:
            nxt = "paused" if r.paused else when(r.next_run, now)
            state = r.last_state or "–"
            if r.last_task_id:
                state += f" (task {r.last_task_id})"
            last = when(r.last_run, now)
            print(f"{r.name[:28]:<28} {r.rule[:28]:<28} {nxt:>10} {last:>10}  {state}")
        return 0

    return with_store(args, Access.READ, work)


def cmd_schedule(args: argparse.Namespace) -> int:
    async def work(engine: Engine) -> int:
        try:
            if args.action == "run":
                task_id = await engine.trigger_schedule(args.name)
                print(f"{args.name}: run enqueued as task {task_id}")
            elif args.action == "pause":
                changed = await engine.pause_schedule(args.name)
                print(f"{args.name}: {'paused' if changed else 'was already paused'}")
            else:
                changed = await engine.resume_schedule(args.name)
                print(f"{args.name}: {'resumed' if changed else 'was not paused'}")
        except LookupError as exc:  # no such schedule in this store
            raise Refused(str(exc)) from None
        return 0

    return with_store(args, Access.WRITE, work)
