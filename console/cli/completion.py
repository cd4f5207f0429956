"""Shell completion (``argcomplete``): commands, options, handler names and queue names.

    eval "$(taskdeck completion bash)"    # in ~/.bashrc
    eval "$(taskdeck completion zsh)"     # in ~/.zshrc
    taskdeck completion fish | source     # in ~/.config/fish/config.fish

The shell runs ``taskdeck`` with argcomplete's variables set; :func:`complete` answers
and exits before anything else happens. Handler names come from the app's registry
(``--app``, else the demo's handlers); queue names from the store (``--store``, read-only,
within :data:`QUICK` seconds) and the handlers' default queues. A store that is missing
or unreadable gives no queue names, never an error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
from collections.abc import Callable
from typing import Any

import argcomplete
from argcomplete.shell_integration import shellcode

from console.cli.common import build_engine
from console.cli.options import BEFORE, GLOBALS
from engine import Engine

SHELLS = ("bash", "zsh", "fish")
#: the line to put in each shell's start-up file, and that file
RC_LINES = {
    "bash": ('eval "$(taskdeck completion bash)"', "~/.bashrc"),
    "zsh": ('eval "$(taskdeck completion zsh)"', "~/.zshrc"),
    "fish": ("taskdeck completion fish | source", "~/.config/fish/config.fish"),
}
QUICK = 2.0  #: seconds a completion may spend reading the store for queue names
INTERNAL = "taskdeck."  #: handlers the engine registers for itself (webhooks)

Completer = Callable[..., list[str]]


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    cmd = sub.add_parser(
        "completion",
        help="shell completion: prints the script for bash, zsh or fish",
        description="Print the completion script for SHELL. Load it from your shell's "
        "start-up file: " + "; ".join(f"{line} in {rc}" for line, rc in RC_LINES.values()),
    )
    cmd.add_argument("shell", choices=SHELLS, help="bash, zsh or fish")
    cmd.set_defaults(func=cmd_completion)


def cmd_completion(args: argparse.Namespace) -> int:
    line, rc = RC_LINES[args.shell]
    print(f"# taskdeck completion for {args.shell}: put this line in {rc}: {line}")
    print(shellcode(["taskdeck"], shell=args.shell))
    return 0


def complete(parser: Callable[[], argparse.ArgumentParser]) -> None:
    """Answer the shell and exit when run for completion; otherwise do nothing (the
    parser is not even built)."""
    if "_ARGCOMPLETE" in os.environ:
        argcomplete.autocomplete(parser(), always_complete_options=False)  # options after "-"


def completes(action: argparse.Action, completer: Completer) -> argparse.Action:
    """Let ``action``'s values be completed by ``completer``."""
    action.completer = completer  # type: ignore[attr-defined]
    return action


def _engine(parsed: argparse.Namespace) -> Engine:
    """The engine the command line names so far (global options before or after)."""
    args = argparse.Namespace()
    for option in GLOBALS:
        value = getattr(parsed, option.dest, None) or getattr(parsed, BEFORE + option.dest, None)
        setattr(args, option.dest, value)
    return build_engine(args, workers=0, client=True)


def _handlers(parsed: argparse.Namespace) -> list[Any]:
    try:
        engine = _engine(parsed)
    except Exception:  # a bad --app or --config: nothing to offer
        return []
    return [h for h in engine.handlers if not h.name.startswith(INTERNAL)]


def handler_names(prefix: str, parsed_args: argparse.Namespace, **_: Any) -> list[str]:
    """The app's handlers (``--app``), or the demo's."""
    return sorted(h.name for h in _handlers(parsed_args) if h.name.startswith(prefix))


def queue_names(prefix: str, parsed_args: argparse.Namespace, **_: Any) -> list[str]:
    """The store's queues and the handlers' default queues."""
    names = {h.queue for h in _handlers(parsed_args)}
    with contextlib.suppress(Exception):  # no store, or an unreadable one: none from it
        names |= asyncio.run(_stored_queues(_engine(parsed_args)))
    return sorted(n for n in names if n.startswith(prefix))


async def _stored_queues(engine: Engine) -> set[str]:
    async with asyncio.timeout(QUICK), engine.client(read_only=True, create=False):
        return set(engine.snapshot().queues)
