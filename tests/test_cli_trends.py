"""``taskdeck trends`` and ``taskdeck stats`` read the history a running engine wrote."""

from __future__ import annotations

import json
import time
from pathlib import Path

from engine import Engine

from .conftest import FAST, taskdeck


async def seed(db_path: Path) -> float:
    """Three minutes of ``mail.send`` in ``mail``, ending over a minute ago: 2, 4 and 6
    successes, one failure in the last minute. Returns the first minute's start."""
    start = (time.time() // 60 - 5) * 60
    at = [start]
    engine = Engine(db_path, workers=0, clock=lambda: at[0], **FAST)
    await engine.start()
    try:
        for m in range(3):
            at[0] = start + m * 60 + 1
            for _ in range(2 * (m + 1)):
                engine.history.recorder.started("mail.send", "mail", 0.05)
                engine.history.recorder.finished("mail.send", "mail", 0.2, "succeeded", False)
        engine.history.recorder.finished("mail.send", "mail", 1.5, "failed", False)
        at[0] = start + 181
        await engine.history.flush()
    finally:
        await engine.stop(grace=0)
    return start


async def test_trends_and_stats_print_what_was_recorded(db_path: Path) -> None:
    start = await seed(db_path)
    store = ["--store", str(db_path)]
    out = taskdeck(
        "trends", *store, "--since", "10m", "--step", "1m", "--json", "--handler", "mail.send"
    )
    assert out.returncode == 0, out.stderr
    points = {p["t"]: p for p in json.loads(out.stdout)["points"]}
    assert [points[start + m * 60]["successes"] for m in range(3)] == [2, 4, 6]
    assert points[start + 120]["failures"] == 1 and points[start + 120]["runs"] == 7
    table = taskdeck("trends", *store, "--since", "10m", "--step", "1m")
    assert table.stdout.splitlines()[0].split()[:4] == ["period", "runs", "ok", "failed"]
    assert any(line.split()[2:5] == ["7", "6", "1"] for line in table.stdout.splitlines())

    stats = taskdeck("stats", *store, "--handler", "mail.send", "--since", "10m", "--json")
    found = json.loads(stats.stdout)
    assert (found["runs"], found["successes"], found["failures"]) == (13, 12, 1)
    assert abs(found["success_rate"] - 12 / 13) < 1e-9 and abs(found["per_minute"] - 1.3) < 1e-9


def test_bad_durations_and_steps_get_one_line_naming_what_is_allowed(db_path: Path) -> None:
    step = taskdeck("trends", "--store", str(db_path), "--step", "5m")
    since = taskdeck("stats", "--store", str(db_path), "--since", "soon")
    for out, allowed in ((step, "1m, 1h or 1d"), (since, "90m, 24h, 7d")):
        assert out.returncode != 0 and len(out.stderr.strip().splitlines()) == 1
        assert allowed in out.stderr and "Traceback" not in out.stderr
