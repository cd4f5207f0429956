"""``run --headless --http``: /metrics parses with prometheus_client and its numbers
match the workload and the store's counts; /health turns 503 while a handler blocks
the engine's loop, and 200 after."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from engine import Engine, TaskState
from tests.http_app import register
from tests.http_helpers import Served, serving, until_true

OK, BOOM = 5, 2


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample by (name, sorted labels)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def enqueue_workload(store: Path) -> None:
    engine = register(Engine(store, workers=0))
    async with engine.client():
        for n in range(OK):
            await engine.enqueue("ok", {"n": n})
        for _ in range(BOOM):
            await engine.enqueue("boom")


async def enqueue(store: Path, handler: str, payload: dict[str, float]) -> None:
    engine = register(Engine(store, workers=0))
    async with engine.client():
        await engine.enqueue(handler, payload)


async def store_counts(store: Path) -> dict[TaskState, int]:
    engine = Engine(store, workers=0, strict_handlers=False)
    async with engine.client(read_only=True):
        return await engine.counts()


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, Path]]:
    where = tmp_path_factory.mktemp("http-node")
    store = where / "node.db"
    asyncio.run(enqueue_workload(store))
    env = {"TASKDECK_TEST_STORE": str(store)}
    args = ["run", "--headless", "--app", "tests.http_app:engine", "--interval", "60"]
    with serving(args, where, env) as server:
        yield server, store


def test_metrics_match_the_workload(node: tuple[Served, Path]) -> None:
    served, store = node

    def finished() -> bool:
        text = served.get("/metrics").body
        got = samples(text)
        return (
            got.get(("taskdeck_tasks", (("state", "failed"),))) == BOOM
            and got.get(("taskdeck_tasks", (("state", "succeeded"),))) == OK
            and got.get(("taskdeck_handler_runs_total", (("handler", "ok"),))) == OK
            and got.get(("taskdeck_handler_runs_total", (("handler", "boom"),))) == BOOM
        )

    # the store's counts and the handler counters are updated a moment apart
    until_true(finished, what="the workload to finish and the metrics to show it")
    got = samples(served.get("/metrics").body)
    counts = asyncio.run(store_counts(store))
    shown = {s.value: got[("taskdeck_tasks", (("state", s.value),))] for s in TaskState}
    assert shown == {s.value: counts[s] for s in TaskState}
    assert got[("taskdeck_handler_runs_total", (("handler", "ok"),))] == OK
    assert got[("taskdeck_handler_successes_total", (("handler", "ok"),))] == OK
    assert got[("taskdeck_handler_failures_total", (("handler", "boom"),))] == BOOM
    assert got[("taskdeck_handler_retries_total", (("handler", "boom"),))] == 0
    assert got[("taskdeck_handler_run_seconds_count", (("handler", "ok"),))] == OK
    inf = (("handler", "ok"), ("le", "+Inf"))
    assert got[("taskdeck_handler_run_seconds_bucket", inf)] == OK
    assert got[("taskdeck_handler_wait_seconds_count", (("handler", "boom"),))] == BOOM
    assert got[("taskdeck_queue_depth", (("queue", "default"),))] == 0
    workers = {k[1]: v for k, v in got.items() if k[0] == "taskdeck_workers"}
    assert list(workers.values()) == [2]  # this node's two slots, labelled with its name
    assert ("taskdeck_findings", (("severity", "critical"),)) in got
    assert ("process_resident_memory_bytes", ()) in got


def test_health_turns_503_while_the_loop_is_blocked(node: tuple[Served, Path]) -> None:
    served, store = node
    assert served.get("/health").status == 200
    asyncio.run(enqueue(store, "block", {"seconds": 2.0}))  # not over HTTP: its answer would
    # come only once the loop is free again (the handler starts right after the enqueue)

    answers = []
    until_true(
        lambda: answers.append(served.get("/health")) or answers[-1].status == 503,
        what="/health to say 503",
    )
    assert "event loop has not run" in answers[-1].body["reason"]
    start = time.monotonic()
    api = served.get("/api/queues")  # refused at once, never a hang
    assert api.status == 503 and time.monotonic() - start < 1.0
    until_true(lambda: served.get("/health").status == 200, what="/health back to 200")
