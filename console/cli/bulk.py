"""``taskdeck bulk ACTION``, ``taskdeck ops`` and ``taskdeck edit``: bulk operations
on many tasks (see ``engine.ops``) and editing one task that is not running.

``bulk`` says first how many tasks the selection holds and how many the action would
change; ``cancel`` and ``purge`` then ask on a terminal (``--yes`` answers for you;
without a terminal and without ``--yes`` they are refused). While it runs, a terminal
shows a progress bar; at the end it prints the result: changed, skipped and why."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any

from console.cli.common import Access, with_store
from console.cli.errors import Refused, UserError
from console.cli.options import add_note, number_flag, priority_flag, task_id_flag
from console.cli.tasks import parse_run_at
from engine import (
    BULK_ACTIONS,
    DESTRUCTIVE_ACTIONS,
    Engine,
    Operation,
    PayloadError,
    TaskState,
    parse_payload,
)

RETRIES = number_flag("--retries", int, 0, 100, "retries")
BAR = 30
POLL = 0.2


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    bulk = sub.add_parser(
        "bulk",
        parents=[common],
        help="act on many tasks: cancel, retry, reprioritize, move, set-retries, purge",
        description="taskdeck bulk ACTION [--ids ID ... | --where QUERY] [--state S] [--queue Q] "
        "[--handler H] [--all] [--priority P | --to-queue Q | --retries N] [--dry-run] [--yes] "
        "[--note TEXT]",
    )
    bulk.add_argument("action", choices=list(BULK_ACTIONS), help="what to do")
    bulk.add_argument("--ids", nargs="+", type=task_id_flag, metavar="ID", help="these tasks")
    bulk.add_argument("--state", choices=[s.value for s in TaskState], help="tasks in this state")
    bulk.add_argument("--queue", help="tasks in this queue")
    bulk.add_argument("--handler", help="tasks of this handler")
    bulk.add_argument("--where", metavar="QUERY", help="tasks a query matches (as tasks --where)")
    bulk.add_argument("--all", action="store_true", help="every task (no --ids, no filter)")
    bulk.add_argument(
        "--priority",
        type=bulk_priority_flag,
        help="reprioritize: 0–9 or low…critical, or +N/-N to raise/lower each task by N",
    )
    bulk.add_argument("--to-queue", metavar="QUEUE", help="move: the queue to move them to")
    bulk.add_argument("--retries", type=RETRIES, help="set-retries: retries from now on")
    bulk.add_argument("--dry-run", action="store_true", help="only say what it would do")
    bulk.add_argument("--yes", action="store_true", help="do not ask (cancel, purge)")
    bulk.add_argument("--json", action="store_true", help="print the result as JSON")
    add_note(bulk)
    bulk.set_defaults(func=cmd_bulk)

    ops = sub.add_parser(
        "ops",
        parents=[common],
        help="bulk operations: progress and results; ops abort ID",
        description="taskdeck ops [--json] | taskdeck ops abort ID",
    )
    ops.add_argument("verb", nargs="?", choices=["abort"], help="abort: stop an operation")
    ops.add_argument("id", nargs="?", type=task_id_flag, help="the operation's id")
    ops.add_argument("--json", action="store_true", help="print JSON")
    add_note(ops)
    ops.set_defaults(func=cmd_ops)

    edit = sub.add_parser(
        "edit",
        parents=[common],
        help="change a task that is not running (payload, priority, queue …)",
        description="taskdeck edit ID [--payload JSON|@FILE|-] [--priority P] [--queue Q] "
        "[--retries N] [--run-at TIME] [--retry] [--note TEXT]",
    )
    edit.add_argument("id", type=task_id_flag, help="task id")
    edit.add_argument("--payload", help="JSON object, @file with one, or - for standard input")
    edit.add_argument("--priority", type=priority_flag, help="0–9 or low/normal/high/critical")
    edit.add_argument("--queue", help="another queue")
    edit.add_argument("--retries", type=RETRIES, help="retries from the next attempt on")
    edit.add_argument("--run-at", help="a scheduled task's new due time (ISO 8601 with offset)")
    edit.add_argument("--retry", action="store_true", help="then run it again (failed/cancelled)")
    add_note(edit)
    edit.set_defaults(func=cmd_edit)


def bulk_priority_flag(text: str) -> int | str:
    """``--priority``: a priority, or a step ``+N``/``-N`` (checked by the engine)."""
    return text.strip() if text.strip()[:1] in ("+", "-") else priority_flag(text)


def _terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def selection(args: argparse.Namespace) -> dict[str, Any]:
    filtered = any(v is not None for v in (args.state, args.queue, args.handler, args.where))
    if args.ids and filtered:
        raise UserError("give --ids or a filter (--state, --queue, --handler, --where), not both")
    if args.all and (args.ids or filtered):
        raise UserError("--all means every task: give it without --ids or a filter")
    if not (args.ids or filtered or args.all):
        raise UserError(
            f"bulk {args.action} needs the tasks: --ids ID …, a filter (--where QUERY, --state, "
            "--queue, --handler), or --all for every task"
        )
    if args.ids:
        return {"ids": args.ids}
    return {"state": args.state, "queue": args.queue, "handler": args.handler, "where": args.where}


def action_args(args: argparse.Namespace) -> dict[str, Any]:
    given = {"priority": args.priority, "to_queue": args.to_queue, "retries": args.retries}
    needed = BULK_ACTIONS[args.action]
    flag = {"priority": "--priority", "to_queue": "--to-queue", "retries": "--retries"}
    for name, value in given.items():
        if value is not None and name != needed:
            raise UserError(f"bulk {args.action} takes no {flag[name]}")
    if needed is not None and given[needed] is None:
        raise UserError(f"bulk {args.action} needs {flag[needed]}")
    return {k: v for k, v in given.items() if v is not None}


def cmd_bulk(args: argparse.Namespace) -> int:
    extra, chosen = action_args(args), selection(args)

    async def work(engine: Engine) -> int:
        what = {**chosen, **extra}
        preview = await engine.ops.start(args.action, dry_run=True, **what)
        said = f"{preview.title} on {preview.target}: {preview.total:,} tasks match; "
        if args.dry_run or preview.total == 0:
            if args.json:
                print(json.dumps(preview.as_dict()))
            else:
                print(said + preview.summary() + ("" if preview.total else "; nothing changed"))
            return 0
        print(said + preview.summary(), file=sys.stderr if args.json else sys.stdout)
        if args.action in DESTRUCTIVE_ACTIONS and not args.yes:
            await confirm(args.action, preview)
        op = await engine.ops.start(args.action, note=args.note, **what)
        try:
            op = await follow(engine, op)
        except asyncio.CancelledError:  # Ctrl-C: stop it between batches, keep what was done
            await engine.ops.abort(op.id)
            raise
        if args.json:
            print(json.dumps(op.as_dict()))
        else:
            print(f"operation {op.id} {op.state}: {op.summary()}")
        return 0 if op.state == "done" else 1

    return with_store(args, Access.READ if args.dry_run else Access.WRITE, work)


async def confirm(action: str, preview: Operation) -> None:
    """Ask on a terminal before a destructive action; refuse without one."""
    count = f"{preview.changed:,} task{'s' if preview.changed != 1 else ''}"
    if not _terminal(sys.stdin):
        raise Refused(
            f"bulk {action} would change {count}; add --yes to confirm (there is no terminal "
            "to ask on); nothing was changed"
        )
    answer = await asyncio.to_thread(input, f"{action} {count}? [y/N] ")
    if answer.strip().lower() not in ("y", "yes"):
        raise Refused(f"bulk {action} not confirmed; nothing was changed")


async def follow(engine: Engine, op: Operation) -> Operation:
    """Wait for the operation's end; on a terminal, with a progress bar on stderr."""
    bar = _terminal(sys.stderr)
    while not op.finished:
        if bar:
            filled = int(op.fraction * BAR)
            print(
                f"\r[{'#' * filled}{'.' * (BAR - filled)}] {op.done:,}/{op.total:,} "
                f"{op.fraction:4.0%}  {op.changed:,} changed",
                end="",
                file=sys.stderr,
                flush=True,
            )
        try:
            op = await engine.ops.wait(op.id, timeout=POLL)
        except TimeoutError:
            op = await engine.ops.get(op.id)
    if bar:
        print(file=sys.stderr)
    return op


def op_line(op: Operation, now: float) -> str:
    at = time.strftime("%Y-%m-%d %H:%M", time.localtime(op.created_at))
    progress = f"{op.done:,}/{op.total:,}"
    text = (
        f"{op.id:>5}  {at:<16}  {op.title[:24]:<24} {op.target[:28]:<28} "
        f"{op.state:<11} {progress:>15}  {op.summary()}"
    )
    return text + (f"  note: {op.note}" if op.note else "") + (f"  ({op.error})" * bool(op.error))


def cmd_ops(args: argparse.Namespace) -> int:
    if args.verb == "abort":
        if args.id is None:
            raise UserError("ops abort needs the operation's id (taskdeck ops abort 12)")

        async def stop(engine: Engine) -> int:
            try:
                op = await engine.ops.abort(args.id)
            except LookupError as exc:
                raise Refused(str(exc)) from None
            print(json.dumps(op.as_dict()) if args.json else f"operation {op.id} {op.state}: "
                  f"{op.done:,}/{op.total:,} done; {op.summary()}")  # fmt: skip
            return 0

        return with_store(args, Access.WRITE, stop)
    if args.id is not None:
        raise UserError(f"ops takes no id without a verb (taskdeck ops abort {args.id})")

    async def show(engine: Engine) -> int:
        found = await engine.ops.list()
        if args.json:
            print(json.dumps({"operations": [o.as_dict() for o in found]}))
            return 0
        if not found:
            print("no bulk operations yet")
            return 0
        print(f"{'id':>5}  {'started':<16}  {'action':<24} {'tasks':<28} {'state':<11} "
              f"{'done/total':>15}  result")  # fmt: skip
        now = time.time()
        for op in found:
            print(op_line(op, now))
        return 0

    return with_store(args, Access.READ, show)


def read_payload_arg(text: str) -> dict[str, Any]:
    """``--payload``: JSON text, ``@file`` or ``-`` (standard input)."""
    try:
        if text == "-":
            return parse_payload(sys.stdin.buffer.read(), "--payload (standard input)")
        if text.startswith("@"):
            path = text[1:]
            try:
                with open(path, "rb") as f:
                    raw = f.read()
            except OSError as exc:
                raise UserError(f"--payload {text}: cannot read {path}: {exc.strerror}") from None
            return parse_payload(raw, f"--payload {text}")
        return parse_payload(os.fsencode(text), "--payload")
    except PayloadError as exc:
        raise UserError(str(exc)) from None


def cmd_edit(args: argparse.Namespace) -> int:
    changes: dict[str, Any] = {
        "payload": None if args.payload is None else read_payload_arg(args.payload),
        "priority": args.priority,
        "queue": args.queue,
        "retries": args.retries,
        "run_at": None if args.run_at is None else parse_run_at(args.run_at),
    }
    changes = {k: v for k, v in changes.items() if v is not None}
    if not changes and not args.retry:
        raise UserError(
            "edit needs something to change: --payload, --priority, --queue, --retries, "
            "--run-at (or --retry)"
        )

    async def work(engine: Engine) -> int:
        task = await engine.edit(args.id, retry=args.retry, note=args.note, **changes)
        named = ", ".join(changes) or "nothing"
        again = "; queued again" if args.retry else ""
        print(f"task {task.id} edited: {named}{again} (now {task.state.value})")
        return 0

    return with_store(args, Access.WRITE, work)
