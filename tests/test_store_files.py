"""Files that are not a Taskdeck store are refused and left exactly as they were
(issue 13, items 19 and 26).

Only a file that is clearly empty (no file, zero bytes, or an SQLite database with
no schema objects, user_version 0 and application_id 0) or clearly ours (Taskdeck's
application_id) is opened. Anything else is refused before any write, WAL switch or
migration, and a refused open leaves the directory as it found it: no -wal, -shm or
-journal files of its own.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from .conftest import ROOT, taskdeck


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sqlite_file(path: Path, *statements: str, wal: bool = False) -> Path:
    conn = sqlite3.connect(path, isolation_level=None)
    if wal:
        conn.execute("PRAGMA journal_mode = WAL")
    for statement in statements:
        conn.execute(statement)
    conn.close()
    assert not Path(f"{path}-wal").exists()
    return path


def foreign_files(directory: Path) -> dict[Path, str]:
    """Files of other programs, and the reason each refusal must give."""
    text = directory / "notes.txt"
    text.write_text("hello, I am not a database\n" * 200)
    other = "it is an SQLite database of another program"
    return {
        sqlite_file(directory / "uv1.db", "PRAGMA user_version = 1"): (
            f"{other} (user_version 1, no Taskdeck tables)"
        ),
        sqlite_file(directory / "uv2.db", "PRAGMA user_version = 2"): (
            f"{other} (user_version 2, no Taskdeck tables)"
        ),
        sqlite_file(directory / "app.db", "CREATE TABLE users (id INTEGER PRIMARY KEY)"): (
            f"{other} (tables: users)"
        ),
        sqlite_file(directory / "appid.db", "PRAGMA application_id = 305419896"): (
            f"{other} (application_id 0x12345678, not Taskdeck's)"
        ),
        sqlite_file(
            directory / "walapp.db", "CREATE TABLE notes (body TEXT)", wal=True
        ): f"{other} (tables: notes)",
        sqlite_file(directory / "view.db", "CREATE VIEW v AS SELECT 1"): (
            f"{other} (schema objects: v)"
        ),
        text: "it is not an SQLite database",
    }


OPEN_EACH = """
import asyncio, json, sys
from engine import Engine, StoreOpenError

async def main() -> None:
    out = {}
    for path in sys.argv[1:]:
        engine = Engine(path, workers=2)
        try:
            await engine.start()
        except StoreOpenError as exc:
            out[path] = str(exc)
        else:
            out[path] = "opened"
            await engine.stop()
    print(json.dumps(out))

asyncio.run(main())
"""


def test_engine_start_refuses_foreign_files_byte_identical_and_the_process_exits(
    tmp_path: Path,
) -> None:
    expected = foreign_files(tmp_path)
    empty_wal = sqlite_file(tmp_path / "empty-wal.db", wal=True)  # a store being created
    before = {p: digest(p) for p in expected}
    listing = sorted(os.listdir(tmp_path))
    result = subprocess.run(
        [sys.executable, "-c", OPEN_EACH, *map(str, expected), str(empty_wal)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,  # the old code hung here, on the user_version 2 file
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    said = json.loads(result.stdout)
    for path, why in expected.items():
        assert said[str(path)] == (
            f"cannot use {path} as a Taskdeck store: {why}; the file was not touched"
        )
        assert digest(path) == before[path], f"{path.name} was modified"
    assert said[str(empty_wal)] == "opened"  # clearly empty: it becomes a store
    assert sorted(os.listdir(tmp_path)) == listing  # no -wal, -shm or -journal left


def test_cli_status_refuses_foreign_files_in_one_line(tmp_path: Path) -> None:
    expected = foreign_files(tmp_path)
    for name in ("uv1.db", "uv2.db", "notes.txt"):
        path = tmp_path / name
        before = digest(path)
        result = taskdeck("status", "--store", str(path))
        assert result.returncode == 1, result
        assert "Traceback" not in result.stderr
        assert result.stderr.strip().splitlines() == [
            f"taskdeck: error: cannot use {path} as a Taskdeck store: {expected[path]}; "
            "the file was not touched"
        ]
        assert digest(path) == before
    assert not [n for n in os.listdir(tmp_path) if n.endswith(("-wal", "-shm", "-journal"))]
