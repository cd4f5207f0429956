"""``taskdeck why ID`` and ``taskdeck failures``, run as a user runs them on a store
an engine has worked on."""

from __future__ import annotations

import json
from pathlib import Path

from engine import Engine

from .cli_helpers import run
from .test_failures import fail_many, failing_engine


async def test_why_and_failures_on_the_command_line(tmp_path: Path) -> None:
    db = tmp_path / "tasks.db"
    async with failing_engine(db) as engine:
        await fail_many(engine, 30)
        later = await engine.enqueue("upload", {"kind": 0, "n": 1}, delay=7200)
    store = ("--store", str(db))

    done = run("why", later, *store, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"task {later} (scheduled): not due until ")
    assert "(in 2.0 h)" in done.stdout
    answer = json.loads(run("why", later, "--json", *store, cwd=tmp_path).stdout)
    assert answer["code"] == "not_due" and answer["waiting"] is True

    done = run("failures", *store, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["count", "handler", "last", "seen", "error"]
    assert sum(1 for x in lines if "upload" in x and x.lstrip().startswith("10 ")) == 3
    assert "ValueError: upload <n> failed for '…': HEIC is not supported" in done.stdout
    assert "e.g. task " in done.stdout and lines[-1] == "30 failed tasks read"

    data = json.loads(run("failures", "--json", "--since", "1h", *store, cwd=tmp_path).stdout)
    assert [g["count"] for g in data["groups"]] == [10, 10, 10]
    assert data["scanned"] == 30 and data["complete"] is True

    capped = json.loads(run("failures", "--json", "--scan", "5", *store, cwd=tmp_path).stdout)
    assert capped["scanned"] == 5 and capped["complete"] is False
    assert "older not read" in run("failures", "--scan", "5", *store, cwd=tmp_path).stdout


async def test_bad_input_is_one_line(tmp_path: Path) -> None:
    db = tmp_path / "tasks.db"
    async with Engine(db, workers=0, strict_handlers=False).client() as engine:
        await engine.enqueue("x.y")
    for args, wanted in (
        (("why", "abc"), "ids are positive whole numbers"),
        (("why", "999"), "no task with id '999'"),
        (("failures", "--since", "soon"), "--since"),
        (("failures", "--limit", "0"), "--limit"),
    ):
        done = run(*args, "--store", str(db), cwd=tmp_path)
        assert done.returncode != 0, args
        assert wanted in done.stderr and done.stderr.count("\n") == 1, done.stderr
        assert "Traceback" not in done.stderr
