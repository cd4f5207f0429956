"""An engine that is never stopped must not keep Python from exiting (issue 13,
item 16): a script that forgets ``async with engine:`` exits at once, and Python's
default warning filters show an ``UnclosedEngineWarning`` naming the store."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from .conftest import ROOT

SCRIPT = """
import asyncio, gc, sys, time
from engine import Engine

kept = Engine(sys.argv[1], workers=2)

@kept.task(name="nap")
async def nap(seconds: float) -> None:
    await asyncio.sleep(seconds)

@kept.task(name="block")
def block(seconds: float) -> None:
    time.sleep(seconds)

async def forgotten() -> None:
    local = Engine(sys.argv[2], workers=1, strict_handlers=False)
    await local.start()
    await local.enqueue("x", {})

async def main() -> None:
    async with Engine(sys.argv[3], workers=1, strict_handlers=False) as tidy:
        await tidy.enqueue("x", {})
    await kept.start()
    await kept.enqueue("nap", {"seconds": 60})
    await kept.enqueue("block", {"seconds": 60})
    await forgotten()
    await asyncio.sleep(0.3)

asyncio.run(main())
gc.collect()
print("main returned", flush=True)
"""


def test_a_script_that_never_stops_its_engines_exits_with_a_warning(tmp_path: Path) -> None:
    kept, forgotten, tidy = (tmp_path / f"{name}.db" for name in ("kept", "forgotten", "tidy"))
    began = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(kept), str(forgotten), str(tidy)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,  # the old code never exited: aiosqlite's reader thread is no daemon
    )
    assert time.monotonic() - began < 10
    assert result.returncode == 0, result.stderr
    assert result.stdout == "main returned\n"
    assert "Traceback" not in result.stderr
    for path in (kept, forgotten):
        assert (
            f"UnclosedEngineWarning: Engine on {path} was never stopped; use `async with "
            "engine:` or `await engine.stop()`"
        ) in result.stderr
    assert str(tidy) not in result.stderr  # a stopped engine is not warned about
