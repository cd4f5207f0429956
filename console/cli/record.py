"""``console --record FILE [--record-limit SIZE]``: the console writes down what it
shows, to replay with ``taskdeck replay FILE`` (README: Record and replay)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from console.cli.errors import Refused, UserError


def add_record_flags(console: argparse.ArgumentParser) -> None:
    console.add_argument(
        "--record",
        metavar="FILE",
        help="write what the console shows to FILE (gzip), to replay with: taskdeck replay FILE",
    )
    console.add_argument(
        "--record-limit",
        type=_limit,
        default=None,
        metavar="SIZE",
        help="stop recording (the console goes on) at this file size (default 50MB)",
    )


def _limit(text: str) -> int:
    from console.replay.record import parse_limit

    try:
        return parse_limit(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def recorder_for(args: argparse.Namespace, attach: bool, started: float) -> Any:
    """The recorder ``--record`` asks for (None without it)."""
    path = getattr(args, "record", None)
    limit = getattr(args, "record_limit", None)
    if path is None:
        if limit is not None:
            raise UserError("--record-limit needs --record FILE (the file to record to)")
        return None
    if attach:
        raise UserError(
            "--record records a console that runs its engine here; it cannot be combined "
            "with --attach or --read-only"
        )
    from console.replay.file import DEFAULT_LIMIT, Recorder

    try:
        return Recorder(Path(path), limit or DEFAULT_LIMIT, started=started)
    except OSError as exc:
        raise Refused(f"cannot record to {path}: {exc.strerror or exc}") from None
