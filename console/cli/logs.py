"""``taskdeck logs ID [--follow] [--json]``: what a task's handler logged, per attempt."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from typing import Any

from console.cli.common import Access, with_store
from console.cli.options import task_id_flag
from console.format import clock
from engine import TERMINAL_STATES, Engine, LogLine

#: how often ``--follow`` looks for new lines (seconds); the engine writes them on its
#: progress clock (progress_interval, 0.5 s by default)
FOLLOW_POLL = 0.5


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    logs = sub.add_parser(
        "logs", parents=[common], help="what a task logged (per attempt); --follow to watch"
    )
    logs.add_argument("id", type=task_id_flag, help="task id")
    logs.add_argument(
        "--follow",
        "-f",
        action="store_true",
        help="keep printing new lines until the task finishes (Ctrl-C stops)",
    )
    logs.add_argument("--json", action="store_true", help="one JSON object per line")
    logs.set_defaults(func=cmd_logs)


def log_text(line: LogLine) -> str:
    """``2026-12-06 05:21:40.123 #1 INFO    images.resize: resizing cat.png`` (a
    message of several lines goes on indented lines below)."""
    first, *rest = line.message.splitlines() or [""]
    head = f"{clock(line.at, millis=True)} #{line.attempt} {line.level:<8} {line.logger}: {first}"
    return "\n".join([head, *("    " + more for more in rest)])


def log_lines(lines: Sequence[LogLine]) -> list[str]:
    """A task's log as text, for ``logs`` and ``show``."""
    return [log_text(line) for line in lines]


def print_lines(lines: Sequence[LogLine], as_json: bool) -> None:
    for line in lines:
        print(json.dumps(line.as_dict(), ensure_ascii=False) if as_json else log_text(line))
    sys.stdout.flush()


async def all_lines(engine: Engine, task_id: str) -> list[LogLine]:
    """Every stored line of the task (``engine.logs`` answers a page at a time)."""
    lines = await engine.logs(task_id)
    while lines and (more := await engine.logs(task_id, after=lines[-1].seq)):
        lines += more
    return lines


def cmd_logs(args: argparse.Namespace) -> int:
    async def work(engine: Engine) -> int:
        lines = await all_lines(engine, args.id)
        print_lines(lines, args.json)
        if args.follow:
            print(f"following task {args.id} until it finishes (Ctrl-C stops)", file=sys.stderr)
            await follow(engine, args.id, lines[-1].seq if lines else None, args.json)
        return 0

    try:
        return with_store(args, Access.READ, work)
    except KeyboardInterrupt:  # Ctrl-C ends --follow: not an error
        return 0


async def follow(engine: Engine, task_id: str, after: int | None, as_json: bool) -> None:
    """Print new lines until the task is finished (its last lines are stored before it
    shows as finished, so the read after that sees them all)."""
    while True:
        finished = (await engine.get(task_id)).state in TERMINAL_STATES
        while lines := await engine.logs(task_id, after=after):
            print_lines(lines, as_json)
            after = lines[-1].seq
        if finished:
            return
        await asyncio.sleep(FOLLOW_POLL)
