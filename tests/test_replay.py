"""Record the console on the demo and replay it: the same panels and numbers at the
same moments; a truncated or garbage recording is refused in one line."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from console.demo import register_demo
from console.replay.app import ReplayApp
from console.replay.file import Recorder, RecordingError, read_recording
from console.replay.record import RecordingConsole, parse_limit
from engine import Engine
from tests.console_helpers import screen_text, settle, toasts, until

SIZE = (160, 50)
TICKS = 14
MOMENTS = (2, 7, 12)  # the refreshes compared (not the last: its rows are read after it)


async def record_demo(path: Path, db: Path) -> dict[float, list[str]]:
    """Run the demo with a console recording to ``path``, refreshing by hand; the screen
    (but its bottom line) at three moments, by the time of the snapshot shown."""
    engine = Engine(db, workers=4, name="node-1", poll_interval=0.05)
    register_demo(engine, schedules=False)
    recorder = Recorder(path, started=0.0)

    def now() -> float:  # the ages on screen are those of the moment shown
        snap = app.queue.shown if app.is_running else None
        return snap.at if snap is not None else 0.0

    app = RecordingConsole(engine, recorder, demo=True, demo_rate=20, refresh_hz=0.01, now=now)
    screens: dict[float, list[str]] = {}
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        for tick in range(TICKS):
            await pilot.pause(0.25)
            app.refresh_tick()
            await settle(pilot)  # the rows read after the refresh are on screen
            snap = app.queue.shown
            assert snap is not None
            if tick in MOMENTS:
                screens[snap.at] = screen_text(app).splitlines()[:-1]
        app.exit(0)
    return screens


async def replayed(path: Path, moments: list[float]) -> dict[float, list[str]]:
    app = ReplayApp(read_recording(path))
    screens: dict[float, list[str]] = {}
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        for at in moments:
            while app.player.now < at:  # step on, as a user would
                await pilot.press("right")
            await settle(pilot)
            assert app.player.now == at
            screens[at] = screen_text(app).splitlines()[:-1]
    return screens


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[float, list[str]]]:
    import asyncio

    folder = tmp_path_factory.mktemp("record")
    path = folder / "demo.tdrec"
    screens = asyncio.run(record_demo(path, folder / "demo.db"))
    return path, screens


async def test_a_replay_shows_what_the_console_showed(
    recorded: tuple[Path, dict[float, list[str]]],
) -> None:
    path, live = recorded
    assert len(live) == len(MOMENTS)
    again = await replayed(path, sorted(live))
    for at, lines in live.items():
        assert "images." in "\n".join(lines)  # the demo ran: its tasks are on screen
        differ = [
            (i, a, b) for i, (a, b) in enumerate(zip(again[at], lines, strict=True)) if a != b
        ]
        assert not differ, differ  # (line, replayed, live)


async def test_the_timeline_steps_jumps_and_plays(
    recorded: tuple[Path, dict[float, list[str]]],
) -> None:
    path, _ = recorded
    app = ReplayApp(read_recording(path))
    async with app.run_test(size=SIZE) as pilot:
        player = app.player
        await pilot.press("end")
        assert player.index == player.last
        await pilot.press("home", "right", "right")
        assert player.index == 2
        await pilot.press("left")
        assert player.index == 1
        await pilot.press("shift+right")  # ten seconds on: past the end of this recording
        assert player.index == player.last
        await pilot.press("home", "space")
        await until(pilot, lambda: player.index >= 2)  # on at the recorded speed
        assert player.playing
        await pilot.press("space")
        assert not player.playing
        assert "REPLAY" in screen_text(app).splitlines()[-1]


async def test_a_replay_refuses_every_change(
    recorded: tuple[Path, dict[float, list[str]]],
) -> None:
    path, _ = recorded
    app = ReplayApp(read_recording(path))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("e", "c", "f", "s")
        await settle(pilot)
        said = toasts(app)  # type: ignore[arg-type]
        assert len(said) == 4
        assert all(t.startswith("replay: ") for t in said)
        assert "enqueue is not allowed (this is a replay of a recording)" in said[0]
        assert len(app.screen_stack) == 1


def test_a_truncated_recording_says_where_it_ends(
    recorded: tuple[Path, dict[float, list[str]]], tmp_path: Path
) -> None:
    path, _ = recorded
    cut = tmp_path / "cut.tdrec"
    data = path.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(RecordingError, match=r"is truncated after record \d+ \(byte \d+ of"):
        read_recording(cut)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"hello, not a recording\n", r"not a Taskdeck recording: not gzip data \(byte 0\)"),
        (
            gzip.compress(b'{"format": "other"}\n', mtime=0),
            r"record 1 \(near byte \d+\): not a Taskdeck recording",
        ),
        (gzip.compress(b"", mtime=0), "empty recording"),
        (gzip.compress(b"\x00\xff garbage\n", mtime=0), "not a JSON line"),
    ],
    ids=["not-gzip", "not-a-recording", "empty", "not-json"],
)
def test_a_garbage_recording_gets_one_clear_line(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    bad = tmp_path / "bad.tdrec"
    bad.write_bytes(content)
    with pytest.raises(RecordingError, match=expected) as caught:
        read_recording(bad)
    assert "\n" not in str(caught.value)


def test_recording_stops_at_its_limit_and_the_file_stays_readable(
    recorded: tuple[Path, dict[float, list[str]]], tmp_path: Path
) -> None:
    path, _ = recorded
    frames = read_recording(path).frames
    small = tmp_path / "small.tdrec"
    recorder = Recorder(small, limit=20_000, started=0.0)
    for i in range(400):
        frame = frames[i % len(frames)]
        recorder.snapshot(frame.snapshot, frame.state, frame.total, frame.offset, frame.rows)
    recorder.close()
    assert recorder.full
    assert small.stat().st_size <= 20_000
    assert 1 < len(read_recording(small).frames) < 400


def test_record_limit_reads_sizes_and_says_what_is_allowed() -> None:
    assert parse_limit("50MB") == 50_000_000
    assert parse_limit("512KiB") == 512 * 1024
    with pytest.raises(ValueError, match="a size like 50MB, 512KiB or 2GB is allowed; got '5x'"):
        parse_limit("5x")
    with pytest.raises(ValueError, match="must be from 64KiB to 100GB; got 10"):
        parse_limit("10")
