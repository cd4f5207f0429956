"""A recording file: gzip-compressed JSON lines, written off the event loop, bounded.

The first line is a header (``{"format": "taskdeck-recording", "version": 1, ...}``);
then one line per refresh (``"k": "s"``: the snapshot and the queue table's rows) and
one per batch of engine events (``"k": "e"``), in the order the console saw them.
gzip is in the standard library and compresses these repetitive lines about 15-fold
(``bench/record_bench.py``: 80 KB a minute of the demo); zstd is not in the standard
library of Python 3.11, and lzma (not measured) would spend more CPU on what is
already small.

:class:`Recorder` hands lines to a writer thread (no file I/O on the event loop). Each
refresh line is flushed (a sync flush), so a console that is killed leaves a file
readable up to its last refresh. The file never grows past ``limit`` bytes: the line
that would pass it is not written, the file is closed, and :attr:`Recorder.full` says
so. :func:`read_recording` reads a file back, or raises :class:`RecordingError` with a
one-line message that says what is wrong and at which record and byte.
"""

from __future__ import annotations

import gzip
import json
import queue
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from console.panels.bottlenecks import redraw_due
from console.replay.codec import (
    Json,
    RecordError,
    event_json,
    event_of,
    row_json,
    row_of,
    snapshot_json,
    snapshot_of,
)
from engine import EngineSnapshot, Event, Finding, TaskRecord, TaskState

FORMAT = "taskdeck-recording"
VERSION = 1
DEFAULT_LIMIT = 50 * 1024 * 1024
#: room kept for the gzip trailer and a sync flush's marker
TRAILER = 64


class RecordingError(Exception):
    """A recording that cannot be read: the message says what and where."""


@dataclass(frozen=True)
class Frame:
    """One refresh as the console showed it."""

    snapshot: EngineSnapshot
    state: TaskState  #: the queue table's tab
    total: int
    offset: int
    rows: tuple[TaskRecord, ...]
    events: int  #: how many events had arrived before this refresh
    scroll: int = 0  #: the table's first row on screen
    cursor: int = 0  #: the row under the table's cursor
    firing: int = 0  #: alerts firing, as the header said (read apart from the snapshot)
    #: the refresh whose findings the Bottlenecks panel shows (it redraws numbers only
    #: every few seconds: :func:`console.panels.bottlenecks.redraw_due`)
    findings_of: int = 0


@dataclass
class Recording:
    """A recording read back: its refreshes and the events between them."""

    path: Path
    started: float
    frames: list[Frame] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)


class Recorder:
    """Writes what a console shows to ``path`` from a thread, up to ``limit`` bytes."""

    def __init__(self, path: Path, limit: int = DEFAULT_LIMIT, *, started: float) -> None:
        self.path = path
        self.limit = limit
        self.full = False  #: the limit was reached: nothing more is written
        self.error: str | None = None  #: the file could not be written (why)
        self.records = 0
        self._lines: queue.SimpleQueue[tuple[bytes, bool] | None] = queue.SimpleQueue()
        self._raw: IO[bytes] = path.open("wb")  # opened here: a bad path fails at once
        header = {"format": FORMAT, "version": VERSION, "started": started}
        self._lines.put((json.dumps(header).encode() + b"\n", True))
        self._thread = threading.Thread(target=self._write_all, name="recorder", daemon=True)
        self._thread.start()

    def snapshot(
        self, snap: EngineSnapshot, state: TaskState, total: int, offset: int,
        rows: Sequence[TaskRecord], *, scroll: int = 0, cursor: int = 0, firing: int = 0,
    ) -> None:  # fmt: skip
        """Record one refresh: the snapshot and the rows the queue table held (from row
        ``offset`` of ``total``; the screen shows from row ``scroll``)."""
        rows_json = [row_json(r) for r in rows]
        record = {"k": "s", "snap": snapshot_json(snap), "state": state.value,
                  "total": total, "offset": offset, "rows": rows_json,
                  "scroll": scroll, "cursor": cursor, "firing": firing}  # fmt: skip
        self._put(record, flush=True)

    def events(self, events: Sequence[Event]) -> None:
        """Record a batch of events as the events panel received it."""
        self._put({"k": "e", "events": [event_json(e) for e in events]}, flush=False)

    def _put(self, record: Json, *, flush: bool) -> None:
        if not (self.full or self.error):
            line = json.dumps(record, separators=(",", ":"), default=str).encode() + b"\n"
            self._lines.put((line, flush))

    def close(self) -> None:
        """Finish the file (waits for the writer thread: call it off the event loop)."""
        self._lines.put(None)
        self._thread.join()

    def _write_all(self) -> None:
        try:
            with self._raw, gzip.GzipFile(fileobj=self._raw, mode="wb", mtime=0) as gz:
                while (item := self._lines.get()) is not None:
                    line, flush = item
                    if self.full:
                        continue
                    if self._raw.tell() + len(line) + TRAILER > self.limit:
                        self.full = True  # the line might not fit compressed: stop here
                        continue
                    gz.write(line)
                    self.records += 1
                    if flush:
                        gz.flush(zlib.Z_SYNC_FLUSH)
        except OSError as exc:
            self.error = f"cannot write {self.path}: {exc.strerror or exc}"

    @property
    def size(self) -> int:
        """Bytes written so far."""
        try:
            return self.path.stat().st_size
        except OSError:
            return 0


def read_recording(path: Path) -> Recording:
    """Read a whole recording; :class:`RecordingError` says what is wrong and where."""
    try:
        raw = path.open("rb")
    except OSError as exc:
        raise RecordingError(f"cannot open recording {path}: {exc.strerror or exc}") from None
    with raw:
        if raw.read(2) != b"\x1f\x8b":
            raise RecordingError(f"{path} is not a Taskdeck recording: not gzip data (byte 0)")
        raw.seek(0)
        return _read(path, raw)


def _read(path: Path, raw: IO[bytes]) -> Recording:
    recording: Recording | None = None
    number = 0
    try:
        with gzip.GzipFile(fileobj=raw, mode="rb") as gz:
            for number, line in enumerate(gz, start=1):
                recording = _add(path, recording, line, number)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        what = "truncated" if isinstance(exc, EOFError) else f"corrupt ({exc})"
        raise RecordingError(
            f"{path} is {what} after record {number} (byte {raw.tell()} of the file)"
        ) from None
    except RecordingError as exc:
        raise RecordingError(f"{path}: record {number} (near byte {raw.tell()}): {exc}") from None
    if recording is None:
        raise RecordingError(f"{path} is an empty recording: no header (byte 0)")
    if not recording.frames:
        raise RecordingError(f"{path} holds no refresh of the console: nothing to replay")
    recording.frames = as_shown(recording.frames)
    return recording


def as_shown(frames: list[Frame]) -> list[Frame]:
    """Each refresh with what the console showed after it: the rows the table read
    after the panels were fed (the ones the next refresh recorded; the last refresh
    keeps its own), and the findings the Bottlenecks panel had drawn."""
    shown: list[Frame] = []
    drawn: tuple[Finding, ...] = ()
    drawn_at, findings_of = 0.0, 0
    for index, frame in enumerate(frames):
        if redraw_due(drawn, drawn_at, frame.snapshot) is not None:
            drawn, drawn_at, findings_of = frame.snapshot.findings, frame.snapshot.at, index
        after = frames[min(index + 1, len(frames) - 1)]
        shown.append(replace(
            frame, state=after.state, total=after.total, offset=after.offset, rows=after.rows,
            scroll=after.scroll, cursor=after.cursor, findings_of=findings_of,
        ))  # fmt: skip
    return shown


def _add(path: Path, recording: Recording | None, line: bytes, number: int) -> Recording:
    try:
        data = json.loads(line)
    except ValueError:
        raise RecordingError("not a JSON line (the file is corrupt)") from None
    if not isinstance(data, dict):
        raise RecordingError("not a record (expected a JSON object)")
    if recording is None:
        if data.get("format") != FORMAT:
            raise RecordingError("not a Taskdeck recording (no recording header)")
        if data.get("version") != VERSION:
            raise RecordingError(f"recording version {data.get('version')!r}; this reads {VERSION}")
        return Recording(path, float(data.get("started", 0.0)))
    try:
        _add_record(recording, data)
    except RecordError as exc:
        raise RecordingError(str(exc)) from None
    return recording


def _add_record(recording: Recording, data: dict[str, Any]) -> None:
    kind = data.get("k")
    if kind == "e":
        recording.events.extend(event_of(e) for e in _list(data, "events"))
    elif kind == "s":
        try:
            state, total, offset = TaskState(data["state"]), int(data["total"]), int(data["offset"])
            scroll, cursor = int(data.get("scroll", 0)), int(data.get("cursor", 0))
            firing = int(data.get("firing", 0))
        except (KeyError, TypeError, ValueError) as exc:
            raise RecordError(f"not a refresh ({type(exc).__name__}: {exc})") from None
        rows = tuple(row_of(r) for r in _list(data, "rows"))
        snap = snapshot_of(data.get("snap") or {})
        events = len(recording.events)
        frame = Frame(snap, state, total, offset, rows, events, scroll, cursor, firing)
        recording.frames.append(frame)
    else:
        raise RecordError(f"unknown record kind {kind!r} (expected 's' or 'e')")


def _list(data: dict[str, Any], key: str) -> list[Any]:
    value = data.get(key)
    if not isinstance(value, list):
        raise RecordError(f"{key!r} is missing or not a list")
    return value
