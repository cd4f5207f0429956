"""Security: private files, key handling, JSON-only payloads, registered handlers only,
parameterised SQL, and no decrypted payloads in list views.

Already proven elsewhere: wrong and missing keys at the Engine (test_durability), a
key file readable by others via --key-file (test_cli), encryption at rest (R12).
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import stat
from pathlib import Path
from typing import Any

import pytest

from console.app import ConsoleApp
from console.panels.task_table import TaskTable
from console.screens.task_detail import TaskDetailScreen
from engine import EncryptionKeyError, Engine, TaskState, generate_key

from .conftest import EngineFactory, taskdeck, until
from .console_helpers import build_engine, settle, started, text_of

ROOT = Path(__file__).resolve().parent.parent
MARKER = "SECRET-MARKER-7731"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def encrypted_store(path: Path, key: str) -> str:
    engine = Engine(path, workers=0, strict_handlers=False, encryption_key=key)
    async with engine:
        return await engine.enqueue("billing.charge", {"card": MARKER}, queue="billing")


# -- files ------------------------------------------------------------------------------


async def test_store_wal_and_shm_files_are_private(
    make_engine: EngineFactory, db_path: Path
) -> None:
    old = os.umask(0o022)  # a permissive umask must not widen them
    try:
        engine = make_engine(workers=0, strict_handlers=False)
        async with engine:
            await engine.enqueue("h", {"v": 1})
            files = [db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm")]
            assert all(p.exists() for p in files)
            assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}
    finally:
        os.umask(old)
    assert mode(db_path) == 0o600


def test_cli_created_store_is_private(tmp_path: Path) -> None:
    store = tmp_path / "cli.db"
    assert taskdeck("enqueue", "images.report", "--store", str(store)).returncode == 0
    assert mode(store) == 0o600


def test_key_file_from_the_environment_readable_by_others_is_refused(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text(generate_key())
    key.chmod(0o640)
    store = tmp_path / "t.db"
    result = taskdeck("status", "--store", str(store), env={"TASKDECK_KEY_FILE": str(key)})
    assert result.returncode == 1 and "Traceback" not in result.stderr  # a key problem
    assert f"readable by other users (mode 640); run: chmod 600 {key}" in result.stderr
    assert not store.exists()
    key.chmod(0o600)
    env = {"TASKDECK_KEY_FILE": str(key)}
    made = taskdeck("enqueue", "images.report", "--store", str(store), env=env)
    assert made.returncode == 0, made.stderr
    ok = taskdeck("status", "--store", str(store), env={"TASKDECK_KEY_FILE": str(key)})
    assert ok.returncode == 0, ok.stderr
    assert "is encrypted" in taskdeck("status", "--store", str(store)).stderr


# -- keys ---------------------------------------------------------------------------------


#: A real key with its last two characters spoiled (fixed, so every test process
#: collects the same test ids).
SPOILED = "Ugg6f72NQ1JGc8myUcg6CZtfRVnhhe71DrCFgudBIF!!"


@pytest.mark.parametrize("bad", ["not-a-key", "A" * 43, SPOILED, ""])
async def test_malformed_key_is_refused_before_the_store_is_touched(
    db_path: Path, bad: str
) -> None:
    await encrypted_store(db_path, generate_key())
    before = digest(db_path)
    if bad:
        with pytest.raises(EncryptionKeyError, match="not a valid Fernet key: it must be 32"):
            Engine(db_path, workers=2, encryption_key=bad)
    else:  # an empty key is no key: the store says it needs one
        engine = Engine(db_path, workers=2, encryption_key=bad)
        with pytest.raises(EncryptionKeyError, match="is encrypted"):
            await engine.start()
    assert digest(db_path) == before


async def test_cli_refuses_wrong_malformed_and_missing_keys_without_touching_a_row(
    tmp_path: Path,
) -> None:
    store = tmp_path / "secret.db"
    await encrypted_store(store, generate_key())
    before = digest(store)
    malformed = tmp_path / "malformed.key"
    malformed.write_text("0123456789")
    malformed.chmod(0o600)
    cases = [
        ({"TASKDECK_KEY": generate_key()}, [], "keys do not match data in this store"),
        ({}, ["--key-file", str(malformed)], "not a valid Fernet key"),
        ({}, [], "is encrypted; start the engine with encryption_key="),
    ]
    for env, extra, message in cases:
        result = taskdeck("tasks", "--store", str(store), *extra, env=env)
        assert result.returncode == 1, result
        assert "Traceback" not in result.stderr and message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert digest(store) == before
    # The read-only look at a WAL store may leave an empty -wal and a -shm: private.
    wal, shm = Path(f"{store}-wal"), Path(f"{store}-shm")
    assert not wal.exists() or wal.stat().st_size == 0
    assert all(mode(p) == 0o600 for p in (wal, shm) if p.exists())


# -- JSON only ----------------------------------------------------------------------------

_FORBIDDEN = [
    (re.compile(r"^\s*(import|from)\s+(c?pickle|dill|shelve|marshal)\b", re.M), "pickle import"),
    (re.compile(r"\b(c?pickle|marshal|dill|shelve)\.(loads?|dumps?)\b"), "pickle/marshal call"),
    (re.compile(r"(?<![\w.])eval\("), "eval("),
    (re.compile(r"(?<![\w.])exec\("), "exec("),
    (re.compile(r"\bimport_module\("), "import by name"),
]


def test_no_pickle_eval_or_import_by_name_in_the_engine() -> None:
    sources = sorted((ROOT / "engine").rglob("*.py")) + sorted((ROOT / "console").rglob("*.py"))
    assert len(sources) > 20
    found = []
    for path in sources:
        text = path.read_text(encoding="utf-8")
        for pattern, what in _FORBIDDEN:
            if pattern.search(text):
                found.append(f"{path.relative_to(ROOT)}: {what}")
    # Only code the operator chose is imported by name: the CLI's --app module, and a
    # process worker importing a *registered* handler's own module (executors.py sends
    # handler.module / handler.qualname from the registry, never a task's stored name).
    assert sorted(found) == [
        "console/cli/common.py: import by name",
        "engine/pool/worker_process.py: import by name",
    ]
    executors = (ROOT / "engine" / "pool" / "executors.py").read_text(encoding="utf-8")
    assert '"module": handler.module,' in executors


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"blob": b"\x80\x03"}, r"not JSON-serialisable at \$\.blob: bytes"),
        ({"tags": {"a", "b"}}, r"not JSON-serialisable at \$\.tags: set"),
        ({"obj": object()}, r"not JSON-serialisable at \$\.obj: object"),
        ({"items": [1, 2, Path("/etc/passwd")]}, r"at \$\.items\[2\]"),
    ],
)
async def test_payloads_that_are_not_plain_json_are_refused(
    make_engine: EngineFactory, payload: dict[str, Any], message: str
) -> None:
    engine = make_engine(workers=0, strict_handlers=False)
    async with engine:
        with pytest.raises(ValueError, match=message):
            await engine.enqueue("h", payload)
        with pytest.raises(ValueError, match=message):
            await engine.enqueue_many([("h", {"ok": 1}), ("h", payload)])
        assert (await engine.tasks()).total == 0


# -- registered handlers only ---------------------------------------------------------


async def test_unregistered_handler_names_stay_queued_and_are_never_imported(
    make_engine: EngineFactory, tmp_path: Path
) -> None:
    canary = tmp_path / "pwned"
    producer = make_engine(workers=0, strict_handlers=False)
    async with producer:
        hostile = [
            await producer.enqueue("os.system", {"command": f"touch {canary}"}),
            await producer.enqueue("builtins.eval", {"source": f"open('{canary}', 'w')"}),
            await producer.enqueue("subprocess.run", {"args": ["touch", str(canary)]}),
        ]
        known = await producer.enqueue("reports.build", {"day": "mon"})
    worker = make_engine(workers=2)

    @worker.task(name="reports.build")
    async def build(day: str) -> str:
        return f"report {day}"

    async with worker:
        assert (await worker.wait(known, timeout=10)).state == TaskState.SUCCEEDED
        await until(
            lambda: any(f.rule == "unclaimable" for f in worker.snapshot().findings),
            timeout=15,
            what="an unclaimable-handler finding",
        )
        finding = next(f for f in worker.snapshot().findings if f.rule == "unclaimable")
        for name in ("os.system (1)", "builtins.eval (1)", "subprocess.run (1)"):
            assert name in finding.evidence
        assert "never imported by name" in finding.suggestion
        for tid in hostile:
            record = await worker.get(tid)
            assert (record.state, record.attempts) == (TaskState.QUEUED, 0)
    assert not canary.exists()


# -- parameterised SQL ------------------------------------------------------------------

HOSTILE = [
    "'; DROP TABLE tasks;--",
    '" OR 1=1 --',
    "a' OR 'a'='a",
    "%",
    "_",
    "\\",
    "50%_off\\'",
    "x); DELETE FROM tasks; --",
    "Robert'); DROP TABLE queues;--",
]


async def test_hostile_names_and_filters_never_reach_sql_unquoted(
    make_engine: EngineFactory, db_path: Path
) -> None:
    engine = make_engine(workers=0, strict_handlers=False)
    async with engine:
        ids = await engine.enqueue_many([("mail.send", {"n": i}) for i in range(5)])
        for bad in HOSTILE:
            for call in (
                lambda b: engine.enqueue("mail.send", {}, queue=b),
                lambda b: engine.tasks(queue=b),
                lambda b: engine.position(ids[0], queue=b),
                lambda b: engine.tasks_around(ids[0], queue=b),
                engine.pause,
                engine.resume,
                lambda b: engine.purge(queue=b),
            ):
                with pytest.raises(ValueError, match=r"queue name .* is not allowed: use 1–64"):
                    await call(bad)
            with pytest.raises(ValueError, match=r"handler name .* is not allowed"):
                await engine.enqueue(bad, {})
            with pytest.raises(LookupError, match="no task with id"):
                await engine.get(bad)
            # Filters are values, not SQL: they match nothing here and break nothing.
            assert list(await engine.tasks(handler=bad)) == []
            assert list(await engine.tasks(text=bad)) == []
            assert list(await engine.tasks(id_prefix=bad)) == []
            assert await engine.position(ids[0], handler=bad) is None
            assert await engine.tasks_around(ids[0], handler=bad) is None
            assert await engine.retry_all(handler=bad) == 0
            assert await engine.purge(TaskState.SUCCEEDED, handler=bad) == 0
        assert [t.id for t in await engine.tasks(text="mail.")] == ids[::-1]
        assert [t.id for t in await engine.tasks(text="ail.s")] == ids[::-1]
    conn = sqlite3.connect(db_path)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"tasks", "queues", "meta", "task_counts"} <= tables
    assert conn.execute("SELECT count(*) FROM tasks").fetchone()[0] == 5
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


# -- list views never show decrypted payloads -------------------------------------------


async def test_cli_task_list_never_prints_payloads(tmp_path: Path) -> None:
    key = generate_key()
    store = tmp_path / "secret.db"
    tid = await encrypted_store(store, key)
    for extra in (["--json"], []):
        result = taskdeck("tasks", "--store", str(store), *extra, env={"TASKDECK_KEY": key})
        assert result.returncode == 0, result.stderr
        assert tid in result.stdout and "billing.charge" in result.stdout
        assert MARKER not in result.stdout and MARKER not in result.stderr


async def test_console_shows_the_payload_only_in_the_task_detail(db_path: Path) -> None:
    engine = build_engine(db_path, workers=0, encryption_key=generate_key())
    app = ConsoleApp(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        tid = await engine.enqueue("images.resize", {"job_id": MARKER})
        app.refresh_tick()
        await settle(pilot)
        table = app.query_one("#queue TaskTable", TaskTable)
        assert table.selected is not None and table.selected.id == tid
        lines = "\n".join(table.render_line(y).text for y in range(table.size.height))
        assert tid in lines and "images.resize" in lines
        assert MARKER not in lines
        assert MARKER not in app.export_screenshot()
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, TaskDetailScreen)
        assert MARKER in text_of(app.screen.query_one("#detail"))
