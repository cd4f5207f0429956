"""The audit trail through the public API: every operator action leaves one entry with
its actor, interface, target, outcome and note; refusals too; nothing for the
workload, the autoscaler or a node carrying out another node's command; entries
survive a restart, are filtered, kept for ``audit_retention``, and read on both
backends."""

from __future__ import annotations

import getpass
import os
import socket
import time
from pathlib import Path

import pytest

from engine import AuditEntry, Engine, InvalidTransition, TaskNotFound, TaskState

from .conftest import BOTH_BACKENDS, FAST, until


def only(entries: list[AuditEntry], action: str) -> AuditEntry:
    found = [e for e in entries if e.action == action]
    assert len(found) == 1, f"{action}: {found}"
    return found[0]


@BOTH_BACKENDS
async def test_every_operator_action_leaves_one_entry_with_actor_target_and_note(
    store: str | Path,
) -> None:
    engine = Engine(store, workers=1, interface="cli", strict_handlers=False, **FAST)

    @engine.periodic(every=3600, name="nightly")
    async def nightly() -> None:
        return None

    async with engine:
        await engine.pause("q")  # nothing starts: tasks stay queued for the commands
        with engine.audit.note("INC-1"):
            task = await engine.enqueue("job", {}, queue="q")
            other = await engine.enqueue("job", {}, queue="q")
            await engine.reprioritize(task, "high")
            await engine.cancel(task)
            await engine.retry(task)
        with engine.audit.note("cleanup"):
            await engine.cancel(task)
            assert await engine.retry_all(TaskState.CANCELLED, queue="q") == 1
            await engine.cancel(task)
            assert await engine.purge(TaskState.CANCELLED, queue="q") == 1
        await engine.resume("q")
        await engine.set_workers(2)
        await engine.update_settings(result_ttl=120)
        await engine.reset_settings("result_ttl")
        await engine.pause_schedule("nightly")
        await engine.resume_schedule("nightly")
        await engine.trigger_schedule("nightly")
        await engine.pause_all(note="big red button")
        await engine.resume_all()
        await engine.send_command("set_workers", {"n": 3}, node=engine.node)
        entries = await engine.audit.entries()

    actions = [e.action for e in reversed(entries)]
    assert actions == [
        "pause", "enqueue", "enqueue", "reprioritize", "cancel", "retry", "cancel",
        "retry_all", "cancel", "purge", "resume", "set_workers", "update_settings",
        "reset_settings", "pause_schedule", "resume_schedule", "run_schedule", "pause_all",
        "resume_all", "node_set_workers",
    ]  # fmt: skip
    for e in entries:
        assert (e.user, e.host, e.pid, e.interface) == (
            getpass.getuser(), socket.gethostname(), os.getpid(), "cli",
        )  # fmt: skip
        assert e.ok, e
    first = entries[-2]
    assert (first.target, first.task_id, first.note) == (f"task {task} (job)", task, "INC-1")
    assert only(entries, "reprioritize").outcome == "priority 5 → 7"
    assert (
        only(entries, "purge").note == "cleanup"
        and "1 tasks deleted" in only(entries, "purge").outcome
    )
    assert only(entries, "retry_all").target == "cancelled tasks in queue q"
    assert only(entries, "pause").target == "queue q" and only(entries, "pause").note is None
    assert only(entries, "pause_all").note == "big red button"
    assert only(entries, "update_settings").target == "settings result_ttl=120.0"
    assert only(entries, "node_set_workers").target == f'node {engine.node}: {{"n":3}}'
    assert [e.task_id for e in entries if e.task_id] == [task] * 5 + [other, task]


async def test_refusals_are_recorded_and_bad_input_is_not(db_path: Path) -> None:
    engine = Engine(db_path, workers=0, interface="console", strict_handlers=False)
    async with engine:
        task = await engine.enqueue("job", {})
        await engine.cancel(task)
        with pytest.raises(InvalidTransition):
            await engine.cancel(task)  # already cancelled
        with pytest.raises(TaskNotFound):
            await engine.retry(999)
        with engine.audit.note("by hand"), pytest.raises(ValueError):
            await engine.enqueue("job", {}, priority=42)  # bad input: nothing was tried
        with pytest.raises(ValueError, match="note: at most 500"), engine.audit.note("x" * 501):
            pass
        entries = await engine.audit.entries()
    assert [(e.action, e.ok) for e in entries] == [
        ("retry", False), ("cancel", False), ("cancel", True),
    ]  # fmt: skip
    refused = entries[1]
    assert refused.interface == "console" and refused.outcome.startswith("InvalidTransition")
    assert entries[0].task_id is None  # about no task: in no task's history
    assert "no task with id" in entries[0].outcome


async def test_the_workload_the_autoscaler_and_applied_node_commands_are_not_recorded(
    db_path: Path,
) -> None:
    engine = Engine(db_path, workers=1, strict_handlers=False, **FAST)

    @engine.task(name="job")
    async def job() -> None:
        return None

    async with engine:
        ids = [await engine.enqueue("job", {}) for _ in range(5)]
        await engine.enqueue_many([("job", {})] * 5)
        for task_id in ids:
            await engine.wait(task_id, timeout=10)
        command = await engine.send_command("set_workers", {"n": 2}, node=engine.node)
        await until(lambda: engine.worker_count == 2, 5, "the node carries out its command")
        assert command > 0
        with engine.audit.quiet():
            await engine.pause("quiet")
        entries = await engine.audit.entries()
    assert [e.action for e in entries] == ["node_set_workers"]  # sent once, applied silently


async def test_entries_survive_a_restart_and_are_filtered(db_path: Path, tmp_path: Path) -> None:
    engine = Engine(db_path, workers=0, strict_handlers=False)
    async with engine:
        a = await engine.enqueue("job", {})
        b = await engine.enqueue("job", {})
        await engine.cancel(a)
        await engine.cancel(b)
        await engine.pause("images")
    start = time.time()
    again = Engine(db_path, workers=0, strict_handlers=False)
    async with again:
        await again.resume("images")
        assert [e.action for e in await again.audit.entries()] == [
            "resume", "pause", "cancel", "cancel",
        ]  # fmt: skip
        assert [e.target for e in await again.audit.entries(task=a)] == [f"task {a}"]
        assert [e.action for e in await again.audit.entries(since=start)] == ["resume"]
        assert [e.action for e in await again.audit.entries(action="pause")] == ["pause"]
        me = getpass.getuser()
        assert len(await again.audit.entries(actor=me)) == 4
        assert len(await again.audit.entries(actor=f"{me}@{socket.gethostname()}")) == 4
        assert await again.audit.entries(actor="nobody-else") == []
        assert len(await again.audit.entries(limit=2)) == 2
        for bad in (0, -1, 1.5, True):
            with pytest.raises(ValueError, match="limit"):
                await again.audit.entries(limit=bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="actor"):
            await again.audit.entries(actor="@host")
        # a read-only client reads them, and writes nothing
        reader = Engine(db_path, workers=0, strict_handlers=False)
        async with reader.client(read_only=True):
            assert len(await reader.audit.entries()) == 4


async def test_old_entries_are_deleted_after_audit_retention(db_path: Path) -> None:
    now = [time.time()]
    engine = Engine(db_path, workers=0, strict_handlers=False, clock=lambda: now[0])
    async with engine:
        await engine.pause("a")
        now[0] += 3 * 86400
        await engine.pause("b")
        await engine.update_settings(audit_retention=86400)
        assert await engine.audit.forget() == 1
        assert [e.target for e in await engine.audit.entries()] == [
            "settings audit_retention=86400.0", "queue b",
        ]  # fmt: skip
