"""Reading the command line and turning every failure into one line and an exit code."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import metadata

from console import log_format
from console.cli import (
    alerts,
    audit,
    bulk,
    completion,
    diagnose,
    interactive,
    logs,
    nodes,
    queues,
    replay,
    routes,
    schedules,
    serve,
    settings,
    stack,
    tasks,
    trends,
)
from console.cli.errors import EXIT_INTERRUPTED, UserError, exit_code, log, message
from console.cli.options import add_before, merge, shared_parser


class Parser(argparse.ArgumentParser):
    """argparse, with its usage errors raised (so ``main`` reports them like the rest)
    instead of printed by argparse itself."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(f"{message} (see taskdeck {self._command()}--help)")

    def _command(self) -> str:
        words = self.prog.split()[1:]
        return " ".join(words) + " " if words else ""


def parser() -> argparse.ArgumentParser:
    common = shared_parser()
    top = Parser(
        prog="taskdeck",
        description="Taskdeck: a durable task engine with a live operations console. "
        "Global options work before or after the command.",
    )
    top.add_argument("--version", action="version", version=f"taskdeck {version()}")
    add_before(top)
    sub = top.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    interactive.add_parsers(sub, common)
    tasks.add_parsers(sub, common)
    logs.add_parsers(sub, common)
    stack.add_parsers(sub, common)
    schedules.add_parsers(sub, common)
    queues.add_parsers(sub, common)
    routes.add_parsers(sub, common)
    nodes.add_parsers(sub, common)
    alerts.add_parsers(sub, common)
    settings.add_parsers(sub, common)
    audit.add_parsers(sub, common)
    diagnose.add_parsers(sub, common)
    trends.add_parsers(sub, common)
    bulk.add_parsers(sub, common)
    completion.add_parsers(sub, common)
    serve.add_parsers(sub, common)
    replay.add_parsers(sub, common)
    return top


def version() -> str:
    """The installed package's version (``pyproject.toml``)."""
    try:
        return metadata.version("taskdeck")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "(not installed)"


def parse(arguments: list[str]) -> argparse.Namespace:
    args = parser().parse_args(arguments)
    if args.command is None:  # no command: the console on the demo
        args = parser().parse_args(["console", *arguments])
    merge(args)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    completion.complete(parser)  # run by the shell for completion: answers and exits
    try:
        args = parse(arguments)
        log_format.configure(args.log_level, getattr(args, "log_format", "text"))
        code: int = args.func(args)
        return code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except SystemExit as exc:  # --help, or a library that exits
        return exc.code if isinstance(exc.code, int) else 0
    except BaseException as exc:  # every failure: one line, never a traceback
        log.debug("taskdeck failed", exc_info=exc)
        for line in message(exc).splitlines():
            print(f"taskdeck: error: {line}" if line == line.lstrip() else line, file=sys.stderr)
        return exit_code(exc)
