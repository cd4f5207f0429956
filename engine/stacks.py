"""The live stack of a running task: what its handler's code is doing right now.

:func:`coroutine_frames` walks an ``async def`` handler's await chain (``cr_await``),
:func:`thread_frames` reads a thread's current frame (``sys._current_frames``); a
worker process reads its own main thread the same way and sends the raw frames to
its parent (see :mod:`engine.pool.worker_process`). :func:`fold` turns raw frames,
outermost first, into what an operator reads: the handler's frames first (its own
function, then what it called, down to the line it is on), each run of engine,
asyncio or threading frames folded into one line ("… 7 engine frames").

Only the standard library here: the worker process imports it too.
"""

from __future__ import annotations

import linecache
import os
import sys
import sysconfig
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any

#: raw frame: (file, line, function)
RawFrame = tuple[str, int, str]

MAX_FRAMES = 200  # the deepest stack read (a runaway recursion is cut here)
_ENGINE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_STDLIB_DIR = os.path.abspath(sysconfig.get_paths()["stdlib"]) + os.sep
#: standard-library parts that run the handler (the event loop, threads), folded
_RUNNERS = {
    "asyncio": "asyncio",
    "concurrent": "threading",
    "threading.py": "threading",
    "selectors.py": "asyncio",
    "runpy.py": "engine",
    "contextlib.py": "engine",
}


@dataclass(frozen=True, slots=True)
class StackFrame:
    """One frame: where (file, line), in which function, and that line of source. A
    frame with ``folded`` > 0 stands for that many engine frames (``function`` says
    whose: engine, asyncio, threading)."""

    file: str
    line: int
    function: str
    source: str
    folded: int = 0

    @property
    def where(self) -> str:
        """``path/file.py:12``."""
        return f"{self.file}:{self.line}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "function": self.function,
            "source": self.source,
            "folded": self.folded,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StackFrame:
        return cls(
            str(data["file"]),
            int(data["line"]),
            str(data["function"]),
            str(data.get("source", "")),
            int(data.get("folded", 0)),
        )


@dataclass(frozen=True, slots=True)
class StackTrace:
    """A running task's stack as taken at ``taken_at`` (epoch seconds) on ``node``:
    handler frames first, engine frames folded (see the module docstring)."""

    task_id: int
    node: str
    executor: str
    handler: str
    frames: tuple[StackFrame, ...]
    taken_at: float

    @property
    def top(self) -> StackFrame | None:
        """The handler's frame that runs now: its innermost frame of its own code."""
        own = [f for f in self.frames if not f.folded]
        return own[-1] if own else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "node": self.node,
            "executor": self.executor,
            "handler": self.handler,
            "taken_at": self.taken_at,
            "frames": [f.as_dict() for f in self.frames],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StackTrace:
        return cls(
            int(data["task_id"]),
            str(data["node"]),
            str(data["executor"]),
            str(data["handler"]),
            tuple(StackFrame.from_dict(f) for f in data["frames"]),
            float(data["taken_at"]),
        )

    def lines(self) -> list[str]:
        """The frames as text, a traceback's shape: ``File "x.py", line 3, in f`` then
        the source line indented; folded frames as one ``…`` line each."""
        out = []
        for frame in self.frames:
            if frame.folded:
                out.append(f"  {fold_text(frame)}")
                continue
            out.append(f'  File "{frame.file}", line {frame.line}, in {frame.function}')
            if frame.source:
                out.append(f"    {frame.source}")
        return out


def fold_text(frame: StackFrame) -> str:
    """``… 7 engine frames``."""
    plural = "s" if frame.folded != 1 else ""
    return f"… {frame.folded} {frame.function} frame{plural}"


def whose(file: str) -> str | None:
    """``engine``, ``asyncio``, ``threading`` (or ``python``: a frozen module) for a
    frame of the machinery that runs handlers; None for the handler's own code (and
    the libraries it calls)."""
    if file.startswith("<frozen "):  # a frozen standard module (runpy, importlib)
        return "engine" if file == "<frozen runpy>" else "python"
    path = os.path.abspath(file)
    if path.startswith(_ENGINE_DIR):
        return "engine"
    if path.startswith(_STDLIB_DIR):
        first = path[len(_STDLIB_DIR) :].split(os.sep, 1)[0]
        return _RUNNERS.get(first)
    return None


def _raw(frame: FrameType, line: int | None = None) -> RawFrame:
    code = frame.f_code
    return (code.co_filename, frame.f_lineno if line is None else line, code.co_qualname)


def coroutine_frames(awaitable: object) -> list[RawFrame]:
    """The frames of a suspended coroutine and of what it awaits, outermost first
    (stops at a future or anything that is not a coroutine or generator)."""
    frames: list[RawFrame] = []
    current: object = awaitable
    while current is not None and len(frames) < MAX_FRAMES:
        frame = getattr(current, "cr_frame", None) or getattr(current, "gi_frame", None)
        frame = frame or getattr(current, "ag_frame", None)
        if frame is None:
            break
        frames.append(_raw(frame))
        current = (
            getattr(current, "cr_await", None)
            or getattr(current, "gi_yieldfrom", None)
            or getattr(current, "ag_await", None)
        )
    return frames


def thread_frames(ident: int | None) -> list[RawFrame]:
    """The frames a thread runs now, outermost first; empty if it is gone."""
    frame = sys._current_frames().get(ident) if ident is not None else None
    frames: list[RawFrame] = []
    while frame is not None and len(frames) < MAX_FRAMES:
        frames.append(_raw(frame))
        frame = frame.f_back
    frames.reverse()
    return frames


def fold(raw: Iterable[Sequence[Any]]) -> tuple[StackFrame, ...]:
    """Handler frames first (outermost of its own code down to the current line), each
    run of machinery frames inside folded into one; the machinery below the handler
    (what called it) as one last folded line."""
    frames = [(str(f[0]), int(f[1]), str(f[2])) for f in raw]
    first_own = next((i for i, f in enumerate(frames) if whose(f[0]) is None), len(frames))
    out: list[StackFrame] = []
    run: list[str] = []
    for file, line, function in frames[first_own:]:
        kind = whose(file)
        if kind is not None:
            run.append(kind)
            continue
        if run:
            out.append(_folded(run))
            run = []
        source = linecache.getline(file, line).strip()
        out.append(StackFrame(_short(file), line, function, source))
    if run:
        out.append(_folded(run))
    below = [k for k in (whose(f[0]) for f in frames[:first_own]) if k is not None]
    if below:
        out.append(_folded(below))
    return tuple(out)


def _folded(kinds: Sequence[str]) -> StackFrame:
    names = "/".join(dict.fromkeys(kinds))
    return StackFrame("", 0, names, "", len(kinds))


def _short(file: str) -> str:
    """A path relative to the working directory when it is inside it."""
    try:
        relative = os.path.relpath(file)
    except ValueError:  # another drive (Windows)
        return file
    return file if relative.startswith("..") else relative
