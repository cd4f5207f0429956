"""Several engines on one store: node rows, and operator commands carried out by the
node(s) they are addressed to within a second."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from engine import Engine, EventKind, TaskState
from engine.cluster import node_findings
from engine.model import NodeInfo

from .conftest import EngineFactory, until


async def _results(engine: Engine, command_id: int, count: int) -> list[str]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        results = await engine.command_results(command_id)
        if len(results) >= count:
            return [f"{r.node}:{r.ok}:{r.outcome}" for r in results]
        await asyncio.sleep(0.05)
    raise AssertionError(f"command {command_id} got fewer than {count} results")


async def test_nodes_are_listed_with_their_workers(make_engine: EngineFactory) -> None:
    one = make_engine(workers=2, name="node-a")
    two = make_engine(workers=3, name="node-b")
    async with one, two:
        nodes: list = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(nodes) < 2:
            nodes = [n for n in await one.nodes() if n.state == "alive"]
            await asyncio.sleep(0.05)
        by_id = {n.id: n for n in nodes}
        assert set(by_id) == {"node-a", "node-b"}
        assert (by_id["node-a"].workers, by_id["node-b"].workers) == (2, 3)
        assert by_id["node-a"].pid > 0 and by_id["node-a"].host
        assert "throughput" in by_id["node-b"].snapshot
    listed = await _after_stop(one.store_url)
    assert {n.id: n.state for n in listed} == {"node-a": "stopped", "node-b": "stopped"}


async def _after_stop(url: str) -> list:
    probe = Engine(url, workers=0, name="probe")
    async with probe:
        return [n for n in await probe.nodes() if n.id != "probe"]


async def test_a_command_reaches_one_node_within_a_second(make_engine: EngineFactory) -> None:
    one = make_engine(workers=2, name="node-a")
    two = make_engine(workers=2, name="node-b")
    async with one, two:
        sent = time.monotonic()
        command = await one.send_command("set_workers", {"n": 5}, node="node-b")
        await until(lambda: two.worker_count == 5, timeout=2, what="node-b resized")
        assert time.monotonic() - sent < 1.0
        assert await _results(one, command, 1) == ["node-b:True:workers 2 → 5"]
        assert one.worker_count == 2  # not addressed


async def test_a_command_for_every_node_and_a_refused_one(make_engine: EngineFactory) -> None:
    one = make_engine(workers=1, name="node-a")
    two = make_engine(workers=1, name="node-b")
    async with one, two:
        command = await two.send_command("update_settings", {"result_ttl": 120})
        results = await _results(two, command, 2)
        assert sorted(results) == [
            "node-a:True:settings: result_ttl=120",
            "node-b:True:settings: result_ttl=120",
        ]
        assert one.settings.result_ttl == two.settings.result_ttl == 120
        bad = await one.send_command("update_settings", {"result_ttl": -1}, node="node-b")
        (outcome,) = await _results(one, bad, 1)
        assert outcome.startswith("node-b:False:") and "result_ttl" in outcome
        assert two.settings.result_ttl == 120  # nothing changed


async def test_commands_are_checked_before_they_are_sent(make_engine: EngineFactory) -> None:
    engine = make_engine(workers=0)
    async with engine:
        with pytest.raises(ValueError, match="unknown command 'reboot'"):
            await engine.send_command("reboot")
        with pytest.raises(ValueError, match="set_workers needs n"):
            await engine.send_command("set_workers", {})


async def test_cancel_stops_a_task_running_on_another_node(make_engine: EngineFactory) -> None:
    worker = make_engine(workers=1, name="node-w", lease_renew_interval=1.5)
    operator = make_engine(workers=0, name="node-op")

    @worker.task(name="slow")
    async def slow() -> None:
        await asyncio.sleep(30)

    async with worker, operator:
        events = worker.events([EventKind.STARTED])
        task_id = await worker.enqueue("slow")
        async with asyncio.timeout(5):
            while (await events.get()).task_id != task_id:
                pass
        began = time.monotonic()
        assert await operator.cancel(task_id) == TaskState.RUNNING
        await until(lambda: worker.snapshot().busy_workers == 0, timeout=2, what="stopped")
        assert time.monotonic() - began < 1.0  # well before the lease renewal notices
        assert (await operator.get(task_id)).state == TaskState.CANCELLED


async def test_a_silent_node_is_marked_dead(db_path: Path, make_engine: EngineFactory) -> None:
    ghost = make_engine(workers=1, name="ghost")
    watcher = make_engine(workers=0, name="watcher")
    async with watcher:
        await ghost.start()
        await asyncio.sleep(0.6)  # one heartbeat of the ghost
        for task in ghost._runtime.service_tasks:  # the process "freezes": no more heartbeats
            task.cancel()
        deadline = time.monotonic() + 10
        state = ""
        while time.monotonic() < deadline:
            state = {n.id: n.state for n in await watcher.nodes()}.get("ghost", "")
            if state == "dead":
                break
            await asyncio.sleep(0.2)
        assert state == "dead"


async def test_producers_and_clients_are_not_nodes(make_engine: EngineFactory) -> None:
    producer = make_engine(workers=0, name="web-app")
    worker = make_engine(workers=1, name="node-w")
    async with producer, worker:
        await until(
            lambda: worker._state.node_keeper is not None and worker._state.node_keeper.joined
        )
        await asyncio.sleep(0.6)
        assert [n.id for n in await producer.nodes()] == ["node-w"]


def test_a_heartbeats_findings_are_read_back_and_odd_entries_left_out() -> None:
    good = {
        "severity": "warning",
        "title": "Workers saturated and the backlog is growing",
        "evidence": "busy 4/4",
        "suggestion": "Add workers: 6",
        "rule": "saturated",
        "action": ["set_workers", {"n": 6}],
    }
    odd = [
        {"severity": "dire", "title": "t", "evidence": "", "suggestion": ""},  # unknown level
        {"severity": "info"},  # fields missing
        "not a mapping",
        {**good, "action": "set_workers"},  # action not a [name, args] pair
    ]
    node = NodeInfo("node-b", "host", 1, "1", 0.0, 0.0, "alive", 4, 4, {"findings": [*odd, good]})
    [finding] = node_findings(node)
    assert finding.node == "node-b" and finding.rule == "saturated"
    assert finding.action == ("set_workers", {"n": 6})
    assert node_findings(NodeInfo("n", "h", 1, "1", 0.0, 0.0, "alive", 0, 0, {})) == ()
