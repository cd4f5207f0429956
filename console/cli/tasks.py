"""Task commands: ``enqueue``, ``status``, ``tasks``, ``show``, ``cancel``, ``retry``,
``workflow``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from console.cli.common import Access, with_store
from console.cli.errors import Refused, UserError
from console.cli.logs import all_lines, log_lines
from console.cli.options import (
    HIDE_PAYLOADS_ENV,
    add_note,
    add_where,
    env_switch,
    number_flag,
    priority_flag,
    task_id_flag,
)
from console.format import ago, clock, parse_time, paused_by, when
from engine import (
    AuditEntry,
    Engine,
    PayloadError,
    QueryError,
    TaskNotFound,
    TaskRecord,
    TaskState,
    parse_payload,
)

DELAY = number_flag("--delay", float, 0, 315_360_000, "s")
LIMIT = number_flag("--limit", int, 1, 10_000, "tasks")
OFFSET = number_flag("--offset", int, 0, 1_000_000_000, "tasks")


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    enqueue = sub.add_parser("enqueue", parents=[common], help="enqueue a task; prints its id")
    enqueue.add_argument("handler", help="handler name, e.g. images.download")
    enqueue.add_argument("payload", nargs="?", help='JSON object, e.g. \'{"url": "https://…"}\'')
    enqueue.add_argument("--priority", type=priority_flag, help="0–9 or low/normal/high/critical")
    enqueue.add_argument("--queue", help="queue (default: the handler's)")
    enqueue.add_argument("--delay", type=DELAY, metavar="SECONDS", help="seconds from now")
    enqueue.add_argument("--run-at", help="when, ISO 8601 with offset: 2026-11-23T02:00:00+01:00")
    enqueue.add_argument("--unique-key", help="at most one active task per key")
    enqueue.add_argument("--webhook", help="http(s) URL that receives the final record (POST)")
    add_note(enqueue)
    enqueue.set_defaults(func=cmd_enqueue)

    status = sub.add_parser("status", parents=[common], help="counts per queue and state")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=cmd_status)

    tasks = sub.add_parser("tasks", parents=[common], help="list tasks (no payloads)")
    tasks.add_argument("--state", choices=[s.value for s in TaskState], help="only this state")
    tasks.add_argument("--queue", help="only this queue")
    tasks.add_argument("--handler", help="only this handler")
    add_where(tasks)
    tasks.add_argument("--limit", type=LIMIT, default=50, help="how many (default 50)")
    tasks.add_argument("--offset", type=OFFSET, default=0, help="skip this many")
    tasks.add_argument("--json", action="store_true", help="print JSON")
    add_hide_flag(tasks)
    tasks.set_defaults(func=cmd_tasks)

    show = sub.add_parser("show", parents=[common], help="one task: payload, result, timeline")
    show.add_argument("id", type=task_id_flag, help="task id")
    show.add_argument("--json", action="store_true", help="print JSON")
    add_hide_flag(show)
    show.set_defaults(func=cmd_show)

    for verb in ("cancel", "retry"):
        cmd = sub.add_parser(verb, parents=[common], help=f"{verb} tasks by id")
        cmd.add_argument("ids", nargs="+", type=task_id_flag, help="task ids")
        add_note(cmd)
        cmd.set_defaults(func=lambda a, verb=verb: each_task(a, verb))

    workflow = sub.add_parser("workflow", parents=[common], help="a workflow's steps")
    workflow.add_argument("id", type=task_id_flag, help="workflow id")
    workflow.add_argument("--json", action="store_true", help="print JSON")
    workflow.set_defaults(func=cmd_workflow)


#: What stands in for a hidden payload or result.
HIDDEN = "(hidden: --hide-payloads)"


def add_hide_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--hide-payloads",
        action="store_true",
        help="no payloads or results, only metadata (or TASKDECK_HIDE_PAYLOADS=1)",
    )


def payloads_hidden(args: argparse.Namespace) -> bool:
    """``--hide-payloads``, or TASKDECK_HIDE_PAYLOADS on (a bad value is refused)."""
    return bool(args.hide_payloads) or env_switch(HIDE_PAYLOADS_ENV, os.environ)


def read_payload(text: str | None) -> dict[str, Any]:
    """The payload argument as the bytes that were typed (a payload that is not UTF-8
    is refused with the offset of the first bad byte), parsed as a JSON object."""
    if text is None:
        return {}
    try:
        return parse_payload(os.fsencode(text))
    except PayloadError as exc:
        raise UserError(str(exc)) from None


def parse_run_at(text: str) -> datetime:
    """``--run-at``: an ISO 8601 time with its UTC offset."""
    try:
        return parse_time(text)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def cmd_enqueue(args: argparse.Namespace) -> int:
    payload = read_payload(args.payload)
    if args.delay is not None and args.run_at is not None:
        raise UserError("give --delay or --run-at, not both")
    options: dict[str, Any] = {
        "priority": args.priority,
        "queue": args.queue,
        "delay": args.delay,
        "run_at": parse_run_at(args.run_at) if args.run_at is not None else None,
        "unique_key": args.unique_key,
        "webhook": args.webhook,
    }
    options = {k: v for k, v in options.items() if v is not None}

    async def work(engine: Engine) -> int:
        task_id = await engine.enqueue(args.handler, payload, **options)
        if task_id.deduplicated:
            print(
                f"taskdeck: unique key {args.unique_key!r} is held by active task {task_id}; "
                "nothing was enqueued",
                file=sys.stderr,
            )
        print(task_id)
        return 0

    return with_store(args, Access.CREATE, work)


def cmd_status(args: argparse.Namespace) -> int:
    async def work(engine: Engine) -> int:
        snap = engine.snapshot()
        queues = snap.queues  # counts as read from the store at open
        everything = snap.all_paused
        table: dict[str, dict[str, int]] = {}
        for name, info in queues.items():
            table[name] = {s.value: info.counts.get(s, 0) for s in TaskState}
            if info.paused:
                table[name]["paused"] = 1
        if args.json:
            paused_all = None if everything is None else asdict(everything)
            print(
                json.dumps({"store": engine.store_url, "queues": table, "all_paused": paused_all})
            )
            return 0
        states = [s.value for s in TaskState]
        print(f"store {engine.store_url}")
        if everything is not None:
            said = paused_by(everything.by, everything.at, everything.note)
            print(f"ALL PAUSED {said}; nothing starts until 'taskdeck resume --all'")
        if not table:
            print("no tasks yet")
            return 0
        print(f"{'queue':<20}" + "".join(f"{s:>11}" for s in states))
        totals = dict.fromkeys(states, 0)
        for queue, per in table.items():
            mark = " (paused)" if per.get("paused") else ""
            print(f"{(queue + mark)[:20]:<20}" + "".join(f"{per.get(s, 0):>11,}" for s in states))
            for s in states:
                totals[s] += per.get(s, 0)
        print(f"{'total':<20}" + "".join(f"{totals[s]:>11,}" for s in states))
        return 0

    return with_store(args, Access.READ, work)


def task_row(task: TaskRecord) -> dict[str, Any]:
    """A task for list output: no payload, no result (they may be sensitive)."""
    return {
        "id": task.id,
        "handler": task.handler,
        "queue": task.queue,
        "priority": task.priority,
        "state": task.state.value,
        "attempts": task.attempts,
        "max_attempts": task.max_attempts,
        "created_at": task.created_at,
        "started_at": task.started_at,
        "finished_at": task.finished_at,
        "worker": task.worker,
    }


def cmd_tasks(args: argparse.Namespace) -> int:
    payloads_hidden(args)  # the list never shows them; a bad value is still refused

    async def work(engine: Engine) -> int:
        try:
            page = await engine.tasks(
                state=args.state,
                queue=args.queue,
                handler=args.handler,
                limit=args.limit,
                offset=args.offset,
                where=args.where,
            )
        except QueryError as exc:  # sealed text on an encrypted store, or a search cut off
            raise UserError(f"--where: {exc}") from None
        if args.json:
            print(json.dumps({"total": page.total, "tasks": [task_row(t) for t in page]}))
            return 0
        print(
            f"{'id':>8}  {'handler':<28} {'queue':<14} {'pri':>3}  {'state':<10} {'tries':>5}  age"
        )
        now = time.time()
        for t in page:
            age = now - t.created_at
            print(
                f"{t.id:>8}  {t.handler[:28]:<28} {t.queue[:14]:<14} {t.priority:>3}  "
                f"{t.state.value:<10} {t.attempts:>2}/{t.max_attempts:<2}  {age:,.0f}s"
            )
        shown = f"{len(page)} of {page.total:,}" if page.total is not None else f"{len(page)}"
        print(f"({shown} tasks)")
        return 0

    return with_store(args, Access.READ, work)


def task_json(task: TaskRecord, hide: bool = False) -> dict[str, Any]:
    """Every field of a task, the timeline as a list, for ``show --json``; ``hide``:
    payload and result null, with ``payload_hidden`` and ``result_hidden`` true."""
    row = asdict(task)
    row["state"] = task.state.value
    row["max_attempts"] = task.max_attempts
    row["timeline"] = [asdict(e) | {"state": e.state.value} for e in task.timeline]
    if hide:
        row |= {"payload": None, "result": None, "payload_hidden": True, "result_hidden": True}
    return row


def show_lines(
    task: TaskRecord, now: float, hide: bool = False, actions: Sequence[AuditEntry] = ()
) -> list[str]:
    """A task's detail as text: what it is, where it stands, its data and timeline (with
    the operators' actions on it from the audit trail, in time order)."""
    lines = [
        f"task {task.id} · {task.handler} · queue {task.queue} · priority {task.priority}",
        f"state      {task.state.value}"
        + (" (waiting for earlier workflow steps)" if task.waiting else ""),
        f"attempts   {task.attempts} of {task.max_attempts}",
        f"created    {when(task.created_at, now)}",
    ]
    for label, at in (("due", task.run_at), ("started", task.started_at)):
        if at is not None:
            lines.append(f"{label:<10} {when(at, now)}")
    if task.finished_at is not None:
        ran = f", ran {ago(task.run_time)}" if task.run_time is not None else ""
        lines.append(f"finished   {when(task.finished_at, now)}{ran}")
    if task.worker:
        lines.append(f"worker     {task.worker}")
    if task.progress is not None:
        note = f" · {task.progress_message}" if task.progress_message else ""
        lines.append(f"progress   {task.progress:.0%}{note}")
    if task.workflow_id is not None:
        lines.append(f"workflow   {task.workflow_id}, step {(task.step or 0) + 1}")
    for label, value in (("unique key", task.unique_key), ("webhook", task.webhook)):
        if value:
            lines.append(f"{label:<10} {value}")
    if hide:  # the error stays: it is what an operator needs (see the README)
        lines.append(f"payload    {HIDDEN}")
        if task.result is not None:
            lines.append(f"result     {HIDDEN}")
    else:
        lines.append("payload    " + json.dumps(task.payload, ensure_ascii=False))
        if task.result is not None:
            lines.append("result     " + json.dumps(task.result, ensure_ascii=False))
    if task.error:
        lines.append("error")
        lines.extend("  " + line for line in task.error.rstrip().splitlines())
    lines.append("timeline")
    steps: list[tuple[float, str]] = []
    for entry in task.timeline:
        who = f" by {entry.by}" if entry.by else ""
        note = f" · {entry.note}" if entry.note else ""
        steps.append((entry.at, f"{entry.state.value:<10} attempt {entry.attempt}{who}{note}"))
    for act in actions:
        said = act.outcome if act.ok else f"refused: {act.outcome}"
        note = f" · note: {act.note}" if act.note else ""
        steps.append(
            (act.at, f"{'» ' + act.action:<10} by {act.who} ({act.interface}) · {said}{note}")
        )
    for at, text in sorted(steps, key=lambda step: step[0]):
        lines.append(f"  {clock(at, millis=True)}  {text}")
    return lines


def cmd_show(args: argparse.Namespace) -> int:
    hide = payloads_hidden(args)

    async def work(engine: Engine) -> int:
        task = await engine.get(args.id)
        actions = list(reversed(await engine.audit.entries(task=task.id, limit=200)))
        logged = await all_lines(engine, task.id)
        if args.json:
            row = task_json(task, hide) | {"audit": [a.as_dict() for a in actions]}
            row["logs"] = [line.as_dict() for line in logged]
            print(json.dumps(row, ensure_ascii=False))
        else:
            print("\n".join(show_lines(task, time.time(), hide, actions)))
            if logged:
                print("logs")
                print("\n".join("  " + text for text in log_lines(logged)))
        return 0

    return with_store(args, Access.READ, work)


def each_task(args: argparse.Namespace, verb: str) -> int:
    async def work(engine: Engine) -> int:
        failed = 0
        for task_id in args.ids:
            try:
                if verb == "cancel":
                    previous = await engine.cancel(task_id)
                    print(f"{task_id}: cancelled (was {previous.value})")
                else:
                    await engine.retry(task_id)
                    print(f"{task_id}: queued again")
            except (LookupError, ValueError) as exc:
                failed += 1
                print(f"taskdeck: error: {exc}", file=sys.stderr)
        return 1 if failed else 0

    return with_store(args, Access.WRITE, work)


def cmd_workflow(args: argparse.Namespace) -> int:
    async def work(engine: Engine) -> int:
        try:
            flow = await engine.workflow(args.id)
        except TaskNotFound:
            raise
        except LookupError as exc:
            raise Refused(str(exc)) from None
        if args.json:
            steps = [asdict(s) | {"state": s.state.value} for s in flow.steps]
            print(
                json.dumps({"id": flow.id, "kind": flow.kind, "state": flow.state, "steps": steps})
            )
            return 0
        print(f"{flow.kind} {flow.id} · {flow.state}")
        for step in flow.steps:
            notes = ", ".join(
                n for n, on in (("waiting", step.waiting), ("callback", step.callback)) if on
            )
            print(
                f"  {step.index + 1:>3}. task {step.task_id:>8}  {step.handler[:32]:<32} "
                f"{step.state.value:<10} {notes}"
            )
        return 0

    return with_store(args, Access.READ, work)
