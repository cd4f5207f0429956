"""How big a console recording grows per minute of the demo; prints a JSON summary.

    python bench/record_bench.py               # one minute of the demo (default)
    python bench/record_bench.py --seconds 20  # shorter

Runs the real console (Textual's headless pilot, 160×50) on the demo at its defaults
(3 images a second, 8 workers, 2 refreshes a second) with ``--record``, for
``--seconds`` of wall time, then reads the file back. Reports the file's size, that
size per minute, the uncompressed JSON per minute (what gzip saves), how many refreshes
and event batches were written, and how long reading the file back takes.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # not bench/: its http.py would hide the standard library's

from console.demo import register_demo  # noqa: E402
from console.replay.file import Recorder, read_recording  # noqa: E402
from console.replay.record import RecordingConsole  # noqa: E402
from engine import Engine  # noqa: E402


async def record(folder: Path, seconds: float) -> dict[str, float]:
    path = folder / "demo.tdrec"
    engine = Engine(folder / "demo.db", workers=8, name="bench")
    register_demo(engine, schedules=False)
    recorder = Recorder(path, started=time.time())
    app = RecordingConsole(engine, recorder, demo=True)  # demo rate 3/s, refresh 2 Hz
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause(seconds)
        app.exit(0)
    size = path.stat().st_size
    raw = len(gzip.decompress(path.read_bytes()))
    lines = gzip.decompress(path.read_bytes()).splitlines()[1:]
    kinds = [json.loads(line)["k"] for line in lines]
    started = time.perf_counter()
    recording = read_recording(path)
    read_s = time.perf_counter() - started
    per_minute = 60.0 / seconds
    return {
        "seconds": seconds,
        "bytes": size,
        "bytes_per_minute": round(size * per_minute),
        "uncompressed_bytes_per_minute": round(raw * per_minute),
        "compression_ratio": round(raw / size, 1),
        "refreshes": kinds.count("s"),
        "event_batches": kinds.count("e"),
        "events": len(recording.events),
        "read_back_s": round(read_s, 3),
        "mb_per_hour": round(size * per_minute * 60 / 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        print(json.dumps(asyncio.run(record(Path(folder), args.seconds)), indent=2))


if __name__ == "__main__":
    main()
