"""Failure groups: failed tasks grouped by handler and error fingerprint (exception
type and the message with numbers, ids and quoted values stripped), with count,
first and last seen and a sample; retry and purge a whole group."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from engine import Engine, TaskState, generate_key
from engine.failures import fingerprint, normalise

from .conftest import BOTH_BACKENDS, FAST


def failing_engine(store: str | Path, **options: Any) -> Engine:
    engine = Engine(store, workers=4, **{**FAST, **options})

    @engine.task(name="upload", queue="work", retries=0)
    def upload(kind: int, n: int) -> None:
        if kind == 0:
            raise ValueError(f"upload {n} failed for 'photo-{n}.heic': HEIC is not supported")
        if kind == 1:
            raise LookupError(f"user {uuid.uuid4()} not found (shard {n % 7})")
        raise RuntimeError(f"connection 0x{n + 4096:x} reset by peer after {n}.5 s")

    @engine.task(name="mail", queue="work", retries=0)
    def mail(n: int) -> None:
        raise ValueError(f"upload {n} failed for 'x': HEIC is not supported")

    return engine


async def fail_many(engine: Engine, count: int, kinds: int = 3) -> list[Any]:
    ids: list[Any] = await engine.enqueue_many(
        [("upload", {"kind": i % kinds, "n": i}) for i in range(count)]
    )
    for tid in ids:
        await engine.wait(tid, timeout=30)
    return ids


def test_fingerprint_strips_numbers_ids_and_quoted_values() -> None:
    trace = (
        'Traceback (most recent call last):\n  File "x.py", line 3, in f\n'
        "ValueError: upload 4411 failed for 'a.heic' (id 5f0c1e2d-8a3b-4c5d-9e6f-0a1b2c3d4e5f)\n"
    )
    assert fingerprint(trace) == ("ValueError", "upload <n> failed for '…' (id <uuid>)")
    assert fingerprint("KeyError: 'user-7'") == ("KeyError", "'…'")
    assert fingerprint("app.errors.Gone: object at 0x7f3a2b10 deadbeefcafe1234 gone") == (
        "app.errors.Gone",
        "object at <hex> <hex> gone",
    )
    assert fingerprint("RuntimeError") == ("RuntimeError", "")
    assert fingerprint("worker lost during attempt 2/3 (lease expired)") == (
        "",
        "worker lost during attempt <n>/<n> (lease expired)",
    )
    assert normalise('took 12.5 s, "quoted"  value') == "took <n> s, '…' value"
    assert normalise("cannot decode img-00083.heic: HEIC") == "cannot decode <id>: HEIC"
    assert normalise("cannot decode img-vacation-2024.heic: HEIC") == "cannot decode <id>: HEIC"


async def test_300_failures_with_3_errors_make_3_groups(db_path: Path) -> None:
    async with failing_engine(db_path) as engine:
        ids = await fail_many(engine, 300)
        groups = await engine.diagnose.failures()
    assert groups.scanned == 300 and groups.complete
    assert [(g.handler, g.count) for g in groups] == [("upload", 100)] * 3
    by_type = {g.error_type: g for g in groups}
    assert by_type["ValueError"].message == ("upload <n> failed for '…': HEIC is not supported")
    assert by_type["LookupError"].message == "user <uuid> not found (shard <n>)"
    assert by_type["RuntimeError"].message == "connection <hex> reset by peer after <n> s"
    value = by_type["ValueError"]
    assert sorted(value.task_ids, key=int) == ids[0::3]
    assert value.sample_id == value.task_ids[0]  # the newest
    assert value.sample_message.startswith("ValueError: upload ")
    assert value.first_seen <= value.last_seen


async def test_same_error_in_another_handler_is_another_group(db_path: Path) -> None:
    async with failing_engine(db_path) as engine:
        await fail_many(engine, 3, kinds=1)
        await engine.wait(await engine.enqueue("mail", {"n": 5}), timeout=10)
        groups = await engine.diagnose.failures()
    assert sorted((g.handler, g.count) for g in groups) == [("mail", 1), ("upload", 3)]
    assert len({g.fingerprint for g in groups}) == 1


@BOTH_BACKENDS
async def test_encrypted_errors_are_grouped_in_the_engine(store: str | Path) -> None:
    async with failing_engine(store, encryption_key=generate_key()) as engine:
        await fail_many(engine, 30)
        groups = await engine.diagnose.failures(limit=2)
    assert [g.count for g in groups] == [10, 10]
    assert groups.scanned == 30


async def test_the_scan_is_bounded_and_says_so(db_path: Path) -> None:
    async with failing_engine(db_path) as engine:
        await fail_many(engine, 30)
        groups = await engine.diagnose.failures(scan=12)
        since = await engine.diagnose.failures(since=engine.snapshot().at + 60)
        with pytest.raises(ValueError, match="scan: a whole number from 1 to 1,000,000"):
            await engine.diagnose.failures(scan=0)
    assert groups.scanned == 12 and not groups.complete
    assert sum(g.count for g in groups) == 12
    assert list(since) == [] and since.complete


@BOTH_BACKENDS
async def test_retry_and_purge_a_group(store: str | Path) -> None:
    async with failing_engine(store) as engine:
        await fail_many(engine, 9)
        groups = await engine.diagnose.failures()
        by_type = {g.error_type: g for g in groups}
        retried = await engine.diagnose.retry_group(by_type["ValueError"])
        for tid in by_type["ValueError"].task_ids:
            await engine.wait(tid, timeout=10)  # fails again, the same way
        purged = await engine.diagnose.purge_group(by_type["LookupError"])
        after = await engine.diagnose.failures()
        counts = await engine.counts()
        audit = await engine.audit.entries(limit=5)
    assert (retried, purged) == (3, 3)
    assert sorted(g.error_type for g in after) == ["RuntimeError", "ValueError"]
    assert counts[TaskState.FAILED] == 6
    actions = [e.action for e in audit]
    assert "retry_all" in actions and "purge" in actions
    retry_entry = next(e for e in audit if e.action == "retry_all")
    assert retry_entry.outcome == "3 tasks queued again" and ", ids " in retry_entry.target


def test_a_group_query_names_the_handler_and_the_fixed_message() -> None:
    from console.screens.failures import group_query
    from engine import FailureGroup

    group = FailureGroup(
        "upload", "ValueError", "upload <n> failed for '…': HEIC is \"not\" supported",
        1, 0.0, 0.0, "1", "",
    )  # fmt: skip
    assert group_query(group, encrypted=False) == (
        'handler=upload error~"HEIC is \\"not\\" supported"'
    )
    assert group_query(group, encrypted=True) == "handler=upload"
