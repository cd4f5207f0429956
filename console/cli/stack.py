"""``taskdeck stack ID [--json]``: the live stack of a running task's handler, on
whichever node of the store runs it."""

from __future__ import annotations

import argparse
import json
from typing import Any

from console.cli.common import Access, with_store
from console.cli.options import task_id_flag
from console.format import clock
from engine import Engine, StackTrace


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    stack = sub.add_parser(
        "stack",
        parents=[common],
        help="what a running task's handler is doing now: its live stack (any node)",
    )
    stack.add_argument("id", type=task_id_flag, help="task id (a running task)")
    stack.add_argument("--json", action="store_true", help="the stack as one JSON object")
    stack.set_defaults(func=cmd_stack)


def stack_text(trace: StackTrace) -> list[str]:
    """A heading, then the frames as a traceback shows them (handler frames first)."""
    head = (
        f"task {trace.task_id} · {trace.handler} · {trace.executor} executor · node "
        f"{trace.node} · taken {clock(trace.taken_at, millis=True)}"
    )
    return [head, *(trace.lines() or ["  (no frames: the handler is between steps)"])]


def cmd_stack(args: argparse.Namespace) -> int:
    async def work(engine: Engine) -> int:
        trace = await engine.stack(args.id)
        if args.json:
            print(json.dumps(trace.as_dict(), ensure_ascii=False))
        else:
            print("\n".join(stack_text(trace)))
        return 0

    # another node is asked with a command row: that writes to the store
    return with_store(args, Access.WRITE, work)
