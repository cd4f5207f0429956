"""Issue 13 item 22: with a key, every user-supplied text is encrypted at rest, on both
backends: what a handler reports as progress, the webhook URL (a token in its query
string), an operator's cancel reason, the error text a node's findings quote. The raw
SQLite file and its WAL, and PostgreSQL's rows read with a plain asyncpg query, hold
none of it; the API returns it decrypted, and values stored in clear before a key was
set still read."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from engine import Engine, EventKind, TaskState, current_task, generate_key

from .conftest import FAST
from .pg_fixtures import sql

SECRETS = (b"secret-progress-XYZ", b"secret-token-XYZ", b"secret-reason-XYZ", b"secret-error-XYZ")
HOOK = "https://hooks.example.com/done?token=secret-token-XYZ"


def build(store_url: str, key: str | None, **options: object) -> tuple[Engine, asyncio.Event]:
    engine = Engine(store_url, workers=2, encryption_key=key, **{**FAST, **options})
    may_finish = asyncio.Event()

    @engine.task(name="secrets.job", retries=0)
    async def job() -> str:
        current_task().progress(0.5, "secret-progress-XYZ")
        await may_finish.wait()
        return "done"

    @engine.task(name="secrets.boom", retries=0)
    async def boom() -> None:
        raise ValueError("secret-error-XYZ")

    return engine, may_finish


async def raw_text(store_url: str) -> bytes:
    """Every byte the store keeps: the SQLite file and its WAL, or every row of every
    table of the PostgreSQL schema as text."""
    if store_url.startswith("sqlite"):
        path = Path(store_url.removeprefix("sqlite:///"))
        wal = Path(f"{path}-wal")
        return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    tables = await sql(
        store_url, "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
    )
    out = b""
    for (table,) in tables:
        rows = await sql(store_url, f'SELECT t::text FROM "{table}" t')
        out += "\n".join(r[0] for r in rows).encode()
    return out


async def until_found(engine: Engine, text: str) -> None:
    """Wait for a node heartbeat that carries ``text`` in its findings (heartbeats and
    findings are periodic; no event announces a saved heartbeat)."""
    deadline = time.monotonic() + 15
    while True:
        nodes = await engine.nodes()
        if any(text in str(n.snapshot.get("findings")) for n in nodes):
            return
        assert time.monotonic() < deadline, f"no heartbeat carried {text!r}"
        await asyncio.sleep(0.05)


async def test_user_text_is_encrypted_at_rest_and_read_back(store_url: str) -> None:
    engine, may_finish = build(store_url, generate_key(), retry_storm_min_failures=1)
    async with engine:
        progress = engine.events(kinds=[EventKind.PROGRESS])
        job = await engine.enqueue("secrets.job", webhook=HOOK)
        later = await engine.enqueue("secrets.job", delay=3600)
        await engine.cancel(later, reason="secret-reason-XYZ")
        failed = [await engine.enqueue("secrets.boom") for _ in range(2)]
        for task_id in failed:
            await engine.wait(task_id, timeout=10)
        await asyncio.wait_for(progress.get(), 10)  # sent once it is saved
        await until_found(engine, "secret-error-XYZ")
        stored = await raw_text(store_url)  # the WAL too, while the engine runs
        for secret in SECRETS:
            assert secret not in stored, secret
        may_finish.set()
        record = await engine.wait(job, timeout=10)

        # the API decrypts every one of them
        assert record.progress_message == "secret-progress-XYZ"
        assert record.webhook == HOOK
        cancelled = await engine.get(later)
        assert cancelled.state is TaskState.CANCELLED
        assert cancelled.timeline[-1].note == "secret-reason-XYZ"
        assert "secret-error-XYZ" in (await engine.get(failed[0])).error  # type: ignore[operator]
        webhook_tasks = await engine.tasks(handler="taskdeck.webhook")
        assert [t.payload["url"] for t in webhook_tasks] == [HOOK]
    stored = await raw_text(store_url)
    for secret in SECRETS:
        assert secret not in stored, secret
    assert b"secrets.job" in stored  # handler names stay clear (queryable)


async def test_text_stored_in_clear_before_a_key_still_reads(store_url: str) -> None:
    engine, may_finish = build(store_url, None)
    async with engine:
        progress = engine.events(kinds=[EventKind.PROGRESS])
        job = await engine.enqueue("secrets.job", webhook=HOOK)
        later = await engine.enqueue("secrets.job", delay=3600)
        await engine.cancel(later, reason="secret-reason-XYZ")
        await asyncio.wait_for(progress.get(), 10)
    assert b"secret-progress-XYZ" in await raw_text(store_url)  # no key: clear

    engine, may_finish = build(store_url, generate_key())
    may_finish.set()
    async with engine:
        record = await engine.wait(job, timeout=10)  # rescued, then run again
        assert record.webhook == HOOK
        assert record.progress_message == "secret-progress-XYZ"
        assert (await engine.get(later)).timeline[-1].note == "secret-reason-XYZ"
