"""``taskdeck replay FILE``: a recorded console (``console --record FILE``, see
:mod:`console.cli.record`), opened without an engine or a store. A file that cannot be
read is refused in one line that says what is wrong and at which record and byte.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from console.cli.errors import Refused
from console.cli.interactive import require_terminal


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    replay = sub.add_parser(
        "replay", help="replay a recorded console (console --record FILE): scrub, pause, step"
    )
    replay.add_argument("file", metavar="FILE", help="a recording (console --record FILE)")
    replay.set_defaults(func=cmd_replay)


def cmd_replay(args: argparse.Namespace) -> int:
    from console.replay.file import RecordingError, read_recording

    try:
        recording = read_recording(Path(args.file))
    except RecordingError as exc:
        raise Refused(str(exc)) from None
    require_terminal("replay")
    from console.replay.app import ReplayApp

    code = ReplayApp(recording).run()
    return code or 0
