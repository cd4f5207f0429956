"""Where a replay is in its recording: a frame index moved by steps, seconds and play.

Pure (no Textual): :class:`Player` keeps the current refresh of a recording, moves it
one refresh or some seconds at a time, to the first or the last, and, playing, on
with the clock. :func:`timeline_text` draws the timeline bar.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Sequence

#: seconds a shift+arrow moves
BIG_STEP = 10.0


class Player:
    """The current frame of ``times`` (each refresh's time, ascending)."""

    def __init__(self, times: Sequence[float]) -> None:
        self.times = list(times)
        self.index = 0
        self.playing = False
        self._head: float | None = None  # playing: the recorded time reached

    @property
    def now(self) -> float:
        """The recorded time of the current frame."""
        return self.times[self.index]

    @property
    def last(self) -> int:
        return len(self.times) - 1

    def step(self, frames: int) -> None:
        """``frames`` refreshes on (negative: back); stops at either end."""
        self._head = None
        self.index = max(0, min(self.last, self.index + frames))

    def seek(self, seconds: float) -> None:
        """The frame ``seconds`` on (or back) from this one: the last at or before the
        time on, the first at or after the time back; at least one frame moves."""
        target, self._head = self.now + seconds, None
        if seconds >= 0:
            index = bisect.bisect_right(self.times, target) - 1
            self.index = min(self.last, max(index, self.index + 1))
        else:
            index = bisect.bisect_left(self.times, target)
            self.index = max(0, min(index, self.index - 1))

    def jump(self, end: bool) -> None:
        self.index = self.last if end else 0
        self._head = None

    def advance(self, seconds: float) -> bool:
        """Playing: on by ``seconds`` of recorded time; False (and paused) at the end."""
        if self.index >= self.last:
            self.playing = False
            return False
        if self._head is None or not self.times[self.index] <= self._head:
            self._head = self.now  # moved by a key meanwhile: play on from there
        self._head += seconds
        self.index = max(self.index, bisect.bisect_right(self.times, self._head) - 1)
        return True


def clock(at: float) -> str:
    """``14:03:07`` (local time)."""
    return time.strftime("%H:%M:%S", time.localtime(at))


def span(seconds: float) -> str:
    """``1:05`` or ``1:02:05``."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def timeline_text(player: Player, width: int) -> str:
    """``▶ REPLAY 14:03:07 · 0:12 / 1:00 [━━━━●─────] 25/120 · ←→ step …``."""
    mark = "▶" if player.playing else "||"
    start, end = player.times[0], player.times[-1]
    head = f"{mark} REPLAY {clock(player.now)} · {span(player.now - start)} / {span(end - start)} "
    tail = f" {player.index + 1}/{player.last + 1} · ←→ step · ⇧←→ 10s · space play · home end"
    room = width - len(head) - len(tail) - 2
    if room < 10:
        tail = f" {player.index + 1}/{player.last + 1}"
        room = max(5, width - len(head) - len(tail) - 2)
    at = round(room * player.index / player.last) if player.last else room
    bar = "━" * at + "●" + "─" * max(0, room - at - 1)
    return f"{head}[{bar[:room]}]{tail}"
