"""``taskdeck why ID`` (why a task has not started) and ``taskdeck failures``
(failed tasks grouped by handler and error fingerprint); see ``engine.diagnose``."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from console.cli.audit import since_time
from console.cli.common import Access, with_store
from console.cli.options import number_flag, task_id_flag
from console.format import ago, clock
from engine import Engine, FailureGroup

LIMIT = number_flag("--limit", int, 1, 100_000, "groups")
SCAN = number_flag("--scan", int, 1, 1_000_000, "tasks")


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    why = sub.add_parser(
        "why",
        parents=[common],
        help="why a task has not started (paused, limited, waiting for a step …)",
        description="taskdeck why ID [--json]",
    )
    why.add_argument("id", type=task_id_flag, help="task id")
    why.add_argument("--json", action="store_true", help="print JSON")
    why.set_defaults(func=cmd_why)

    failures = sub.add_parser(
        "failures",
        parents=[common],
        help="failed tasks grouped by handler and error",
        description="taskdeck failures [--json] [--since DURATION] [--limit N] [--scan N]",
    )
    failures.add_argument(
        "--since", metavar="DURATION", help="only tasks failed in the last DURATION (30m, 2h, 7d)"
    )
    failures.add_argument("--limit", type=LIMIT, default=50, help="at most N groups (default 50)")
    failures.add_argument(
        "--scan",
        type=SCAN,
        default=10_000,
        help="read at most the newest N failed tasks (default 10,000)",
    )
    failures.add_argument("--json", action="store_true", help="print JSON")
    failures.set_defaults(func=cmd_failures)


def cmd_why(args: argparse.Namespace) -> int:
    async def work(engine: Engine) -> int:
        answer = await engine.diagnose.why(args.id)
        if args.json:
            print(json.dumps(answer.as_dict()))
        else:
            print(f"task {answer.task_id} ({answer.state}): {answer.text}")
        return 0

    return with_store(args, Access.READ, work)


def cmd_failures(args: argparse.Namespace) -> int:
    now = time.time()
    since = since_time(args.since, now)

    async def work(engine: Engine) -> int:
        groups = await engine.diagnose.failures(since=since, limit=args.limit, scan=args.scan)
        if args.json:
            out = {
                "groups": [g.as_dict() for g in groups],
                "scanned": groups.scanned,
                "complete": groups.complete,
            }
            print(json.dumps(out))
            return 0
        if not groups:
            print("no failed tasks" + (f" in the last {args.since}" if args.since else ""))
            return 0
        print(f"{'count':>6}  {'handler':<20} {'last seen':<19}  error")
        for group in groups:
            print(line(group, now))
        more = "" if groups.complete else f" (the newest {groups.scanned:,}: older not read)"
        print(f"{groups.scanned:,} failed tasks read{more}")
        return 0

    return with_store(args, Access.READ, work)


def line(group: FailureGroup, now: float) -> str:
    """A group as two lines: count, handler, last seen and fingerprint; then the first
    seen time and a sample task with its message as it is."""
    head = (
        f"{group.count:>6}  {group.handler[:20]:<20} {clock(group.last_seen):<19}  "
        f"{group.fingerprint}"
    )
    sample = (
        f"{'':>6}  first seen {ago(now - group.first_seen)} ago; "
        f"e.g. task {group.sample_id}: {group.sample_message[:120]}"
    )
    return f"{head}\n{sample}"
