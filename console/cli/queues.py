"""``taskdeck pause`` and ``taskdeck resume``: queues by name, or everything (``--all``:
no task starts on any node until resumed; running tasks finish, enqueues go on)."""

from __future__ import annotations

import argparse
from typing import Any

from console.cli.common import Access, with_store
from console.cli.completion import completes, queue_names
from console.cli.errors import UserError
from console.cli.options import add_note
from console.format import paused_by
from engine import Engine


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    for verb, what in (("pause", "stop starting"), ("resume", "start again")):
        cmd = sub.add_parser(
            verb, parents=[common], help=f"{what}: queues by name, or --all (every queue, node)"
        )
        completes(
            cmd.add_argument("queues", nargs="*", metavar="QUEUE", help="queue names"), queue_names
        )
        cmd.add_argument(
            "--all", action="store_true", dest="everything", help="every queue on every node"
        )
        add_note(cmd, "why: in the audit trail; with --all also shown to every console")
        cmd.set_defaults(func=cmd_pause if verb == "pause" else cmd_resume)


def _check(args: argparse.Namespace, verb: str) -> None:
    if args.everything and args.queues:
        raise UserError(f"{verb}: give queue names or --all, not both")
    if not args.everything and not args.queues:
        raise UserError(f"{verb}: name the queues to {verb}, or --all for every queue")


def cmd_pause(args: argparse.Namespace) -> int:
    _check(args, "pause")

    async def work(engine: Engine) -> int:
        if args.everything:
            if await engine.pause_all(note=args.note):
                print(
                    "everything paused: no task starts on any node until "
                    "'taskdeck resume --all' (running tasks finish; enqueues are accepted)"
                )
            else:
                now = engine.snapshot().all_paused
                said = f" ({paused_by(now.by, now.at, now.note)})" if now else ""
                print(f"everything was already paused{said}")
            return 0
        for queue in args.queues:
            changed = await engine.pause(queue)
            print(f"{queue}: {'paused' if changed else 'was already paused'}")
        return 0

    return with_store(args, Access.WRITE, work)


def cmd_resume(args: argparse.Namespace) -> int:
    _check(args, "resume")

    async def work(engine: Engine) -> int:
        if args.everything:
            changed = await engine.resume_all()
            print("everything resumed" if changed else "everything was not paused")
            return 0
        for queue in args.queues:
            changed = await engine.resume(queue)
            print(f"{queue}: {'resumed' if changed else 'was not paused'}")
        return 0

    return with_store(args, Access.WRITE, work)
