"""Runtime settings last: a change is saved in the store with who made it and when, a
restarted engine and every other node start from it (a running node takes it within a
heartbeat), and a reset goes back to the file's value. ``taskdeck settings`` says
where each value comes from."""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import socket
import sqlite3
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from engine import Engine, SettingsError, load_config
from engine.store.postgres.conn import parse_url
from engine.store.postgres.schema import MIGRATIONS as PG_MIGRATIONS
from engine.store.postgres.schema import migrate
from engine.store.sqlite.schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION

from .cli_helpers import run
from .conftest import BOTH_BACKENDS, FAST, EngineFactory, until
from .pg_fixtures import server_of, sql


def node(store: str | Path, name: str, workers: int = 1, **options: Any) -> Engine:
    return Engine(store, workers=workers, name=name, **{**FAST, **options})


@BOTH_BACKENDS
async def test_a_runtime_change_survives_a_restart_and_reaches_every_node(
    store: str | Path,
) -> None:
    a, b = node(store, "node-a"), node(store, "node-b")
    async with a, b:
        await until(
            lambda: bool(b._state.node_keeper and b._state.node_keeper.joined), 5, "b joined"
        )
        before = time.time()
        await a.update_settings(result_ttl=600, queue_rate_limits="emails=100/m")
        assert a.settings.result_ttl == 600
        # the running node takes it within a heartbeat
        await until(lambda: b.settings.result_ttl == 600, 2.0, "node-b takes the change")
        assert dict(b.settings.queue_rate_limits) == {"emails": "100/m"}
        info = {i.name: i for i in await b.settings_info()}
        saved = info["result_ttl"]
        assert (saved.source, saved.value, saved.reset_to, saved.reset_from) == (
            "runtime",
            600,
            86400,
            "default",
        )
        assert saved.changed_by == f"{getpass.getuser()}@{socket.gethostname()}"
        assert (saved.pid, saved.interface) == (os.getpid(), "api")
        assert saved.changed_at is not None and before <= saved.changed_at <= time.time()
        assert info["failed_ttl"].source == "default" and info["failed_ttl"].changed_by is None
    # a restarted engine, and a node that was never there, start from it
    for name in ("node-a", "node-c"):
        again = node(store, name)
        async with again:
            assert again.settings.result_ttl == 600
            assert dict(again.settings.queue_rate_limits) == {"emails": "100/m"}


@BOTH_BACKENDS
async def test_reset_goes_back_to_the_file_value_on_every_node(
    store: str | Path, tmp_path: Path
) -> None:
    path = tmp_path / "taskdeck.toml"
    path.write_text("[engine]\nresult_ttl = 900\n", encoding="utf-8")
    config = load_config(path, environ={})
    a = Engine(store, workers=1, name="node-a", config=config)
    b = Engine(store, workers=1, name="node-b", config=config)
    async with a, b:
        await until(
            lambda: bool(b._state.node_keeper and b._state.node_keeper.joined), 5, "b joined"
        )
        await b.update_settings(result_ttl=60)
        await until(lambda: a.settings.result_ttl == 60, 2.0, "node-a takes the change")
        await a.reset_settings("result_ttl")
        assert a.settings.result_ttl == 900
        await until(lambda: b.settings.result_ttl == 900, 2.0, "node-b goes back")
        info = {i.name: i for i in await b.settings_info()}
        assert (info["result_ttl"].source, info["result_ttl"].changed_by) == ("file", None)
        with pytest.raises(SettingsError, match="result_tll: unknown setting; did you mean"):
            await a.reset_settings("result_tll")
    again = Engine(store, workers=1, config=config)
    async with again:
        assert again.settings.result_ttl == 900  # removed from the store


async def test_a_command_to_one_node_is_not_saved(make_engine: EngineFactory) -> None:
    a, b = make_engine(workers=1, name="node-a"), make_engine(workers=1, name="node-b")
    async with a, b:
        await until(
            lambda: bool(b._state.node_keeper and b._state.node_keeper.joined), 5, "b joined"
        )
        await a.send_command("update_settings", {"failed_ttl": 1000}, node="node-b")
        await until(lambda: b.settings.failed_ttl == 1000, 2.0, "node-b alone")
        assert a.settings.failed_ttl == 604800
        assert {i.name: i.source for i in await a.settings_info()}["failed_ttl"] == "default"
    restarted = make_engine(workers=1, name="node-b")
    async with restarted:
        assert restarted.settings.failed_ttl == 604800


async def test_a_change_before_start_holds_for_that_engine_only(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine(workers=1)
    await engine.update_settings(result_ttl=5)  # no store yet: like Engine(result_ttl=5)
    async with engine:
        assert engine.settings.result_ttl == 5
        info = {i.name: i for i in await engine.settings_info()}
        assert info["result_ttl"].source == "code"
    other = make_engine(workers=1)
    async with other:
        assert other.settings.result_ttl == 86400  # nothing was saved


async def test_a_saved_autoscale_never_puts_a_producer_to_work(
    make_engine: EngineFactory,
) -> None:
    worker = make_engine(workers=1, name="node-w", scale_interval=0.1, cooldown=0)
    producer = make_engine(workers=0, name="producer", scale_interval=0.1, cooldown=0)
    async with worker:
        await worker.update_settings(autoscale=True, min_workers=2)
        async with producer:  # it starts from the saved settings, autoscale on
            assert producer.settings.autoscale and producer.settings.min_workers == 2
            await until(lambda: worker.worker_count == 2, 5.0, "the node scales up")
            await asyncio.sleep(1.5)  # the producer's monitor decides once a second too
            assert producer.worker_count == 0  # no workers given: it takes no work


def v4_store(path: Path) -> None:
    """A store as the release before saved settings left it (schema version 4)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("BEGIN IMMEDIATE")
        for _, script in MIGRATIONS[:4]:
            for statement in (st for st in script.split(";\n") if st.strip()):
                conn.execute(statement)
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute("PRAGMA user_version = 4")
        conn.execute("COMMIT")
    finally:
        conn.close()


async def test_a_store_of_the_previous_version_gets_the_table(
    make_engine: EngineFactory, db_path: Path
) -> None:
    v4_store(db_path)
    engine = make_engine(workers=1)
    async with engine:
        await engine.update_settings(result_ttl=42)
    again = make_engine(workers=1)
    async with again:
        assert again.settings.result_ttl == 42
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"saved_settings", "alerts", "alert_leader", "audit"} <= tables  # versions 5–7


async def test_a_postgres_schema_of_the_previous_version_gets_the_table(pg_url: str) -> None:
    conn = await asyncpg.connect(server_of(pg_url))
    try:  # the schema as the release before saved settings left it (version 3)
        await migrate(conn, parse_url(pg_url), None, migrations=PG_MIGRATIONS[:3])
    finally:
        await conn.close()
    assert await sql(pg_url, "SELECT to_regclass('saved_settings')") == [(None,)]
    engine = node(pg_url, "node-a")
    async with engine:
        await engine.update_settings(result_ttl=42)
    again = node(pg_url, "node-b")
    async with again:
        assert again.settings.result_ttl == 42
    assert await sql(pg_url, "SELECT name, value FROM saved_settings") == [("result_ttl", "42.0")]


def settings_json(home: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    done = run("settings", "--json", *args, cwd=home, env=env)
    assert done.returncode == 0, done.stderr
    return {row["name"]: row for row in json.loads(done.stdout)["settings"]}


def test_the_source_of_each_value_on_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "taskdeck.toml").write_text(
        "[engine]\nresult_ttl = 600\nlease_ttl = 20\n", encoding="utf-8"
    )
    payload = '{"image_id": "a", "url": "https://photos.example/a.raw"}'
    assert run("enqueue", "images.download", payload, cwd=tmp_path).returncode == 0
    changed = run("settings", "set", "lease_ttl=40", "autoscale=on", cwd=tmp_path)
    assert changed.returncode == 0, changed.stderr
    assert changed.stdout.splitlines()[:2] == [
        "lease_ttl = 40 s  (runtime; was 20 s, file)",
        "autoscale = on  (runtime; was off, default)",
    ]
    env = {"TASKDECK_FAILED_TTL": "1000"}
    rows = settings_json(tmp_path, "--set", "cooldown=5", env=env)
    sources = {name: rows[name]["source"] for name in rows}
    assert sources["max_workers"] == "default"
    assert sources["result_ttl"] == "file" and rows["result_ttl"]["value"] == 600
    assert sources["failed_ttl"] == "env" and rows["failed_ttl"]["value"] == 1000
    assert sources["cooldown"] == "flag" and rows["cooldown"]["value"] == 5
    assert sources["lease_ttl"] == "runtime" and rows["lease_ttl"]["value"] == 40
    assert rows["lease_ttl"]["reset_to"] == 20 and rows["lease_ttl"]["reset_from"] == "file"
    assert rows["lease_ttl"]["interface"] == "cli"
    assert rows["lease_ttl"]["changed_by"] == f"{getpass.getuser()}@{socket.gethostname()}"
    # the table says the same
    table = run("settings", cwd=tmp_path).stdout.splitlines()
    line = next(t for t in table if t.startswith("lease_ttl "))
    assert line.split()[:4] == ["lease_ttl", "40", "s", "runtime"] and "(cli)" in line
    # reset: back to the file's value; the runtime change is gone from the store
    reset = run("settings", "reset", "lease_ttl", "autoscale", "result_ttl", cwd=tmp_path)
    assert reset.returncode == 0, reset.stderr
    assert reset.stdout.splitlines()[:3] == [
        "lease_ttl = 20 s  (file; was 40 s, runtime)",
        "autoscale = off  (default; was on, runtime)",
        "result_ttl = 600 s  (file; it had no runtime change)",
    ]
    rows = settings_json(tmp_path)
    assert (rows["lease_ttl"]["source"], rows["lease_ttl"]["value"]) == ("file", 20)
    assert rows["lease_ttl"]["changed_by"] is None


def test_bad_settings_on_the_command_line_change_nothing(tmp_path: Path) -> None:
    payload = '{"image_id": "a", "url": "https://photos.example/a.raw"}'
    assert run("enqueue", "images.download", payload, cwd=tmp_path).returncode == 0
    before = settings_json(tmp_path)
    done = run(
        "settings", "set", "result_ttl=600", "lease_ttl=-1", "result_tll=5", "autoscale=maybe",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "taskdeck: error: lease_ttl: must be from 0.5 to 86400 s; got '-1'",
        "taskdeck: error: result_tll: unknown setting; did you mean 'result_ttl'?",
        "taskdeck: error: autoscale: must be true or false (or on/off); got 'maybe'",
        "taskdeck: error: nothing was changed",
    ]
    # values fine one by one that do not fit together
    done = run("settings", "set", "lease_ttl=5", cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.splitlines() == [
        "taskdeck: error: lease_renew_interval: must be shorter than lease_ttl (5 s); got 10 s",
        "taskdeck: error: nothing was changed",
    ]
    for args in (["set"], ["reset"], ["set", "lease_ttl"], ["reset", "lease_tll"], ["x"]):
        done = run("settings", *args, cwd=tmp_path)
        assert done.returncode == 2 and done.stderr.startswith("taskdeck: error: "), args
    assert settings_json(tmp_path) == before
    missing = run("settings", "set", "result_ttl=5", "--store", "nowhere.db", cwd=tmp_path)
    assert missing.returncode == 1 and "no Taskdeck store" in missing.stderr
