"""The ``taskdeck`` command.

    taskdeck                         the console on ./taskdeck.db with the demo handlers and load
    taskdeck console [--no-demo]     the console (on your engine with --app)
    taskdeck console --attach        the console on the nodes of a store (--store URL):
                                     runs no workers; steers the engines that do
    taskdeck run --headless          the engine as a service (status line; --json for JSON lines)
    taskdeck enqueue HANDLER [JSON]  enqueue one task; prints its id
    taskdeck status [--json]         counts per queue and state
    taskdeck tasks [--state S]       a page of tasks (no payloads: list views never show them)
    taskdeck cancel ID… / retry ID…  act on tasks
    taskdeck schedules [--json]      periodic schedules: rule, next and last run, last state
    taskdeck schedule pause|resume|run NAME   steer one schedule
    taskdeck workflow ID [--json]    a chain or group with each step's state
    taskdeck nodes [--json]          the engines (nodes) on the store: workers, done/s, CPU …
    taskdeck node NODE|all VERB …    set-workers N, pause/resume QUEUE, settings NAME=VALUE
    taskdeck screenshot              SVG (and PNG) screenshots of the console into screenshots/

Common options: ``--store URL``, ``--workers N``, ``--app module:attribute`` (your own
Engine), ``--key-file PATH`` (or ``TASKDECK_KEY_FILE``; or the keys in ``TASKDECK_KEY``).
Settings come from
``TASKDECK_<SETTING>`` environment variables (e.g. ``TASKDECK_LEASE_TTL=30``).
User mistakes print one clear line to stderr and exit non-zero, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import os
import stat
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from console.cli_nodes import add_parsers as add_node_parsers
from console.cli_nodes import command_nodes, list_nodes
from console.demo import register_demo
from console.headless import run_headless
from engine import (
    EncryptionKeyError,
    Engine,
    SettingsError,
    StoreError,
    StoreOpenError,
    TaskRecord,
    TaskState,
)
from engine.settings import Settings
from engine.store import DEFAULT_URL

EXIT_USAGE = 2
EXIT_ERROR = 1


class UserError(Exception):
    """A mistake in how taskdeck was called; shown as one line, exit code 2."""


def read_keys(key_file: str | None) -> list[str] | None:
    """Keys from ``--key-file`` (or ``TASKDECK_KEY_FILE``) or ``TASKDECK_KEY``
    (comma-separated: new first)."""
    key_file = key_file or os.environ.get("TASKDECK_KEY_FILE")
    if key_file:
        path = Path(key_file)
        try:
            mode = path.stat().st_mode
        except OSError as exc:
            raise UserError(f"cannot read key file {path}: {exc.strerror}") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise UserError(
                f"key file {path} is readable by other users (mode {stat.S_IMODE(mode):o}); "
                f"run: chmod 600 {path}"
            )
        text = path.read_text(encoding="utf-8")
    else:
        text = os.environ.get("TASKDECK_KEY", "")
    keys = [k.strip() for k in text.replace("\n", ",").split(",") if k.strip()]
    return keys or None


def load_app(spec: str) -> Engine:
    """``module:attribute`` → the user's Engine (or a function returning one)."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise UserError(
            f"--app must look like module:attribute (e.g. myapp.tasks:engine); got {spec!r}"
        )
    sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UserError(f"cannot import {module_name!r} for --app: {exc}") from None
    target = getattr(module, attribute, None)
    if target is None:
        raise UserError(f"module {module_name!r} has no attribute {attribute!r}")
    if callable(target) and not isinstance(target, Engine):
        target = target()
    if not isinstance(target, Engine):
        raise UserError(f"--app {spec} is a {type(target).__name__}, not a taskdeck Engine")
    return target


def build_engine(args: argparse.Namespace, *, workers: int, client: bool = False) -> Engine:
    """The user's Engine (``--app``), or one on ``--store`` with the demo handlers
    (and, unless it is a ``client`` of the store, the demo's schedules)."""
    if args.app:
        if args.store:
            raise UserError("--store cannot be combined with --app: your Engine chooses its store")
        return load_app(args.app)
    engine = Engine(
        args.store or DEFAULT_URL,
        workers=workers,
        keys=read_keys(args.key_file),
        settings=Settings.from_env(),
    )
    register_demo(engine, schedules=not client)
    return engine


def run_client(args: argparse.Namespace, work: Callable[[Engine], Awaitable[int]]) -> int:
    """Open the store without running any worker, do ``work``, close."""
    engine = build_engine(args, workers=0, client=True)

    async def main() -> int:
        await engine.set_workers(0)
        async with engine:
            return await work(engine)

    return asyncio.run(main())


# -- commands -----------------------------------------------------------------------


def attached_engine(args: argparse.Namespace) -> Engine:
    """The engine of ``console --attach``: no workers (so it is no node itself), no
    handlers (any name can be enqueued for the nodes to run), its autoscaler off."""
    if args.app:
        raise UserError(
            "--attach cannot be combined with --app: the attached console runs no handlers; "
            "give the store with --store"
        )
    if args.workers is not None:
        raise UserError(
            "--attach runs no workers: choose a node in the Nodes panel and use ] [ w instead "
            "of --workers"
        )
    return Engine(
        args.store or DEFAULT_URL,
        workers=0,
        keys=read_keys(args.key_file),
        settings=Settings.from_env().replace(autoscale=False),
        strict_handlers=False,
    )


def cmd_console(args: argparse.Namespace) -> int:
    from console.app import ConsoleApp  # Textual loads only when the console runs

    attach = getattr(args, "attach", False)
    refresh = getattr(args, "refresh", 2.0)
    if attach:
        app = ConsoleApp(attached_engine(args), attach=True, refresh_hz=refresh)
    else:
        demo = not args.app and not getattr(args, "no_demo", False)
        engine = build_engine(args, workers=args.workers if args.workers is not None else 8)
        if args.app and args.workers is not None:
            asyncio.run(engine.set_workers(args.workers))
        app = ConsoleApp(engine, demo=demo, refresh_hz=refresh)
    code = app.run()
    if app.return_code and app.return_code != 0:
        return app.return_code
    return code or 0


def cmd_run(args: argparse.Namespace) -> int:
    if not args.headless:
        return cmd_console(args)
    demo = not args.app and not args.no_demo
    workers = args.workers if args.workers is not None else 8
    engine = build_engine(args, workers=workers)
    return asyncio.run(
        run_headless(
            engine,
            workers=args.workers,  # None keeps what the app's Engine asked for
            json_lines=args.json,
            interval=args.interval,
            demo=demo,
            demo_rate=args.demo_rate,
        )
    )


def cmd_enqueue(args: argparse.Namespace) -> int:
    try:
        payload = json.loads(args.payload) if args.payload else {}
    except json.JSONDecodeError as exc:
        raise UserError(
            f"the payload is not valid JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    options: dict[str, Any] = {}
    if args.priority is not None:
        options["priority"] = args.priority
    if args.queue is not None:
        options["queue"] = args.queue
    if args.delay is not None:
        options["delay"] = args.delay
    if args.run_at is not None:
        options["run_at"] = parse_run_at(args.run_at)
    if args.unique_key is not None:
        options["unique_key"] = args.unique_key
    if args.webhook is not None:
        options["webhook"] = args.webhook

    async def work(engine: Engine) -> int:
        task_id = await engine.enqueue(args.handler, payload, **options)
        if getattr(task_id, "deduplicated", False):
            print(
                f"taskdeck: unique key {args.unique_key!r} is held by active task {task_id}; "
                "nothing was enqueued",
                file=sys.stderr,
            )
        print(task_id)
        return 0

    return run_client(args, work)


def parse_run_at(text: str) -> datetime:
    """An ISO 8601 time with its UTC offset (``2026-11-23T02:00:00+01:00`` or ``…Z``)."""
    try:
        at = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UserError(
            f"--run-at must be an ISO 8601 time with a UTC offset, e.g. "
            f"2026-11-23T02:00:00+01:00 or 2026-11-23T01:00:00Z; got {text!r}"
        ) from None
    if at.tzinfo is None:
        raise UserError(
            f"--run-at {text!r} has no UTC offset, so it is ambiguous; add one, e.g. "
            f"{text.strip()}+00:00"
        )
    return at


def _when(at: float | None, now: float) -> str:
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
            nxt = "paused" if r.paused else _when(r.next_run, now)
            state = r.last_state or "–"
            if r.last_task_id:
                state += f" (task {r.last_task_id})"
            last = _when(r.last_run, now)
            print(f"{r.name[:28]:<28} {r.rule[:28]:<28} {nxt:>10} {last:>10}  {state}")
        return 0

    return run_client(args, work)


def cmd_schedule(args: argparse.Namespace) -> int:
    async def work(engine: Engine) -> int:
        if args.action == "run":
            print(f"{args.name}: run enqueued as task {await engine.trigger_schedule(args.name)}")
        elif args.action == "pause":
            changed = await engine.pause_schedule(args.name)
            print(f"{args.name}: {'paused' if changed else 'was already paused'}")
        else:
            changed = await engine.resume_schedule(args.name)
            print(f"{args.name}: {'resumed' if changed else 'was not paused'}")
        return 0

    return run_client(args, work)


def cmd_workflow(args: argparse.Namespace) -> int:
    async def work(engine: Engine) -> int:
        flow = await engine.workflow(args.id)
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

    return run_client(args, work)


def cmd_status(args: argparse.Namespace) -> int:
    async def work(engine: Engine) -> int:
        queues = engine.snapshot().queues  # counts as read from the store at open
        table: dict[str, dict[str, int]] = {}
        for name, info in queues.items():
            table[name] = {s.value: info.counts.get(s, 0) for s in TaskState}
            if info.paused:
                table[name]["paused"] = 1
        if args.json:
            print(json.dumps({"store": engine.store_url, "queues": table}))
            return 0
        states = [s.value for s in TaskState]
        print(f"store {engine.store_url}")
        print(f"{'queue':<20}" + "".join(f"{s:>11}" for s in states))
        totals = dict.fromkeys(states, 0)
        for queue, per in table.items():
            mark = " (paused)" if per.get("paused") else ""
            print(f"{(queue + mark)[:20]:<20}" + "".join(f"{per.get(s, 0):>11,}" for s in states))
            for s in states:
                totals[s] += per.get(s, 0)
        print(f"{'total':<20}" + "".join(f"{totals[s]:>11,}" for s in states))
        return 0

    return run_client(args, work)


def cmd_nodes(args: argparse.Namespace) -> int:
    return run_client(args, lambda engine: list_nodes(engine, args.json))


def cmd_node(args: argparse.Namespace) -> int:
    return run_client(args, lambda engine: command_nodes(engine, args))


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
    async def work(engine: Engine) -> int:
        page = await engine.tasks(
            state=args.state,
            queue=args.queue,
            handler=args.handler,
            limit=args.limit,
            offset=args.offset,
        )
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

    return run_client(args, work)


def _each(args: argparse.Namespace, verb: str) -> int:
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
        return EXIT_ERROR if failed else 0

    return run_client(args, work)


def cmd_screenshot(args: argparse.Namespace) -> int:
    from console.screenshot import take_screenshots

    if not 0 <= args.seconds <= 600:
        raise UserError(f"--seconds must be from 0 to 600; got {args.seconds:g}")
    written = asyncio.run(take_screenshots(Path(args.out), seconds=args.seconds))
    for path in written:
        print(path)
    return 0


# -- argument parsing ---------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--store", help=f"store URL or path (default {DEFAULT_URL})")
    common.add_argument("--workers", type=int, help="worker slots (default 8)")
    common.add_argument("--app", help="your engine as module:attribute (default: the demo)")
    common.add_argument(
        "--key-file", help="file with the encryption key(s) (or TASKDECK_KEY_FILE, TASKDECK_KEY)"
    )
    common.add_argument(
        "--log-level",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="stderr log level",
    )
    top = argparse.ArgumentParser(
        prog="taskdeck",
        parents=[common],
        description="Taskdeck: a durable task engine on one SQLite file, with a live console.",
    )
    sub = top.add_subparsers(dest="command")
    console = sub.add_parser("console", parents=[common], help="the terminal console (default)")
    console.add_argument("--no-demo", action="store_true", help="do not generate demo load")
    console.add_argument(
        "--attach",
        action="store_true",
        help="watch and steer the engines (nodes) on --store; run no workers here",
    )
    console.add_argument("--refresh", type=float, default=2.0, help="refreshes per second")
    console.set_defaults(func=cmd_console)

    run = sub.add_parser("run", parents=[common], help="run the engine")
    run.add_argument("--headless", action="store_true", help="no UI: print a status line")
    run.add_argument("--json", action="store_true", help="status as JSON lines")
    run.add_argument("--interval", type=float, default=2.0, help="seconds between status lines")
    run.add_argument("--no-demo", action="store_true", help="do not generate demo load")
    run.add_argument("--demo-rate", type=float, default=3.0, help="demo downloads per second")
    run.set_defaults(func=cmd_run)

    enqueue = sub.add_parser("enqueue", parents=[common], help="enqueue a task; prints its id")
    enqueue.add_argument("handler", help="handler name, e.g. images.resize")
    enqueue.add_argument("payload", nargs="?", help='JSON object, e.g. \'{"image_id": "a"}\'')
    enqueue.add_argument("--priority", help="0–9 or low/normal/high/critical")
    enqueue.add_argument("--queue", help="queue (default: the handler's)")
    enqueue.add_argument("--delay", type=float, help="seconds from now")
    enqueue.add_argument("--run-at", help="when, ISO 8601 with offset: 2026-11-23T02:00:00+01:00")
    enqueue.add_argument("--unique-key", help="at most one active task per key")
    enqueue.add_argument("--webhook", help="http(s) URL that receives the final record (POST)")
    enqueue.set_defaults(func=cmd_enqueue)

    schedules = sub.add_parser("schedules", parents=[common], help="list periodic schedules")
    schedules.add_argument("--json", action="store_true", help="print JSON")
    schedules.set_defaults(func=cmd_schedules)

    schedule = sub.add_parser("schedule", parents=[common], help="pause, resume or run one")
    schedule.add_argument("action", choices=["pause", "resume", "run"], help="what to do")
    schedule.add_argument("name", help="schedule name (see taskdeck schedules)")
    schedule.set_defaults(func=cmd_schedule)

    workflow = sub.add_parser("workflow", parents=[common], help="a workflow's steps")
    workflow.add_argument("id", help="workflow id")
    workflow.add_argument("--json", action="store_true", help="print JSON")
    workflow.set_defaults(func=cmd_workflow)

    status = sub.add_parser("status", parents=[common], help="counts per queue and state")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=cmd_status)

    tasks = sub.add_parser("tasks", parents=[common], help="list tasks (no payloads)")
    tasks.add_argument("--state", choices=[s.value for s in TaskState], help="only this state")
    tasks.add_argument("--queue", help="only this queue")
    tasks.add_argument("--handler", help="only this handler")
    tasks.add_argument("--limit", type=int, default=50, help="how many (default 50)")
    tasks.add_argument("--offset", type=int, default=0, help="skip this many")
    tasks.add_argument("--json", action="store_true", help="print JSON")
    tasks.set_defaults(func=cmd_tasks)

    for verb in ("cancel", "retry"):
        cmd = sub.add_parser(verb, parents=[common], help=f"{verb} tasks by id")
        cmd.add_argument("ids", nargs="+", help="task ids")
        cmd.set_defaults(func=lambda a, verb=verb: _each(a, verb))

    add_node_parsers(sub, common, cmd_nodes, cmd_node)

    shot = sub.add_parser("screenshot", help="write console screenshots (SVG, and PNG if possible)")
    shot.add_argument("--out", default="screenshots", help="directory (default screenshots/)")
    shot.add_argument("--seconds", type=float, default=8.0, help="demo load before the shots")
    shot.set_defaults(func=cmd_screenshot)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(arguments)
    logging.basicConfig(level=args.log_level, format="%(levelname)s %(name)s: %(message)s")
    if args.command is None:  # no command: the console on the demo
        args = parser().parse_args(["console", *arguments])
    if getattr(args, "workers", None) is not None and args.workers < 0:
        print("taskdeck: error: --workers must be 0 or more", file=sys.stderr)
        return EXIT_USAGE
    try:
        code: int = args.func(args)
        return code
    except UserError as exc:
        print(f"taskdeck: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (
        StoreOpenError,
        EncryptionKeyError,
        SettingsError,
        StoreError,
        ValueError,
        TypeError,
        LookupError,
    ) as exc:
        print(f"taskdeck: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
