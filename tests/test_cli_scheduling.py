"""Scheduling from the shell: run-at, unique keys and webhooks on `enqueue`, the
`schedules` list, `schedule pause|resume|run`, and `workflow`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from engine import Engine, chain

from .conftest import taskdeck


async def _store_with_a_schedule_and_a_chain(path: Path) -> str:
    engine = Engine(path, workers=0)

    @engine.periodic(every=3600, name="reports.hourly")
    async def hourly() -> str:
        return "ok"

    @engine.task(name="add")
    async def add(x: int, n: int = 1) -> int:
        return x + n

    async with engine:
        flow = await engine.enqueue_workflow(chain(add.s(x=1), add.s(), add.s(n=5)))
    return flow.id


def test_schedules_listed_paused_resumed_and_run_now(tmp_path: Path) -> None:
    store = str(tmp_path / "s.db")
    asyncio.run(_store_with_a_schedule_and_a_chain(Path(store)))

    listed = taskdeck("schedules", "--store", store)
    assert listed.returncode == 0, listed.stderr
    assert "reports.hourly" in listed.stdout and "every 1 h" in listed.stdout
    assert "never" in listed.stdout

    ran = taskdeck("schedule", "run", "reports.hourly", "--store", store)
    assert ran.returncode == 0, ran.stderr
    task_id = ran.stdout.strip().rsplit(" ", 1)[-1]
    assert ran.stdout.startswith("reports.hourly: run enqueued as task")

    paused = taskdeck("schedule", "pause", "reports.hourly", "--store", store)
    assert paused.stdout.strip() == "reports.hourly: paused"
    again = taskdeck("schedule", "pause", "reports.hourly", "--store", store)
    assert again.stdout.strip() == "reports.hourly: was already paused"

    data = json.loads(taskdeck("schedules", "--json", "--store", store).stdout)
    (row,) = [r for r in data["schedules"] if r["name"] == "reports.hourly"]
    assert row["paused"] is True and row["last_task_id"] == task_id
    assert row["last_state"] == "queued" and row["every"] == 3600

    resumed = taskdeck("schedule", "resume", "reports.hourly", "--store", store)
    assert resumed.stdout.strip() == "reports.hourly: resumed"

    missing = taskdeck("schedule", "run", "reports.daily", "--store", store)
    assert missing.returncode == 1
    assert "no schedule named 'reports.daily'" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_cli_clients_do_not_write_the_demo_schedules_into_a_store(tmp_path: Path) -> None:
    store = str(tmp_path / "plain.db")
    assert taskdeck("enqueue", "images.report", "--store", store).returncode == 0
    assert taskdeck("status", "--store", store).returncode == 0
    data = json.loads(taskdeck("schedules", "--json", "--store", store).stdout)
    assert data == {"schedules": []}


def test_workflow_shows_each_step(tmp_path: Path) -> None:
    store = str(tmp_path / "w.db")
    flow_id = asyncio.run(_store_with_a_schedule_and_a_chain(Path(store)))
    shown = taskdeck("workflow", flow_id, "--store", store)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == f"chain {flow_id} · running"
    assert "queued" in lines[1] and "waiting" in lines[2] and "waiting" in lines[3]
    data = json.loads(taskdeck("workflow", flow_id, "--json", "--store", store).stdout)
    assert [s["state"] for s in data["steps"]] == ["queued", "scheduled", "scheduled"]
    unknown = taskdeck("workflow", "999", "--store", store)
    assert unknown.returncode == 1 and "no workflow with id '999'" in unknown.stderr


def test_enqueue_unique_key_run_at_and_webhook(tmp_path: Path) -> None:
    store = str(tmp_path / "e.db")
    payload = '{"image_id": "a", "urls": []}'
    first = taskdeck("enqueue", "images.notify", payload, "--unique-key", "k", "--store", store)
    assert first.returncode == 0, first.stderr
    second = taskdeck("enqueue", "images.notify", payload, "--unique-key", "k", "--store", store)
    assert second.returncode == 0
    assert second.stdout.strip() == first.stdout.strip()
    assert "is held by active task" in second.stderr and "nothing was enqueued" in second.stderr

    later = taskdeck(
        "enqueue", "images.notify", payload, "--run-at", "2031-01-01T00:00:00Z", "--store", store
    )
    assert later.returncode == 0, later.stderr
    tasks = json.loads(taskdeck("tasks", "--json", "--state", "scheduled", "--store", store).stdout)
    assert [t["id"] for t in tasks["tasks"]] == [later.stdout.strip()]

    naive = taskdeck(
        "enqueue", "images.notify", payload, "--run-at", "2031-01-01T00:00:00", "--store", store
    )
    assert naive.returncode == 2 and "has no UTC offset" in naive.stderr
    garbage = taskdeck("enqueue", "images.notify", payload, "--run-at", "soon", "--store", store)
    assert garbage.returncode == 2 and "ISO 8601" in garbage.stderr
    bad_hook = taskdeck(
        "enqueue", "images.notify", payload, "--webhook", "ftp://x", "--store", store
    )
    assert bad_hook.returncode == 2 and "http:// or https://" in bad_hook.stderr  # usage
