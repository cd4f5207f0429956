"""``taskdeck nodes`` and ``taskdeck node``, run as a user runs them, next to a headless
engine in another process: the node is listed, and commands reach it (or are refused
with a clear message)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import taskdeck
from .test_cli import start_headless


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        url: str = request.getfixturevalue("pg_url")
        return url
    return str(tmp_path / "cluster.db")


@pytest.fixture
def node(store: str) -> Iterator[dict[str, object]]:
    """A headless engine with 2 workers on ``store``; yields its JSON status lines' reader."""
    proc = start_headless("--store", store, "--workers", "2", "--no-demo")
    assert proc.stdout is not None
    assert json.loads(proc.stdout.readline())["workers"] == 2
    yield {"proc": proc}
    proc.terminate()
    proc.communicate(timeout=30)


def listed(store: str) -> list[dict[str, object]]:
    result = taskdeck("nodes", "--json", "--store", store)
    assert result.returncode == 0, result.stderr
    nodes: list[dict[str, object]] = json.loads(result.stdout)["nodes"]
    return nodes


def test_nodes_lists_the_engine_and_node_commands_reach_it(
    store: str, node: dict[str, object]
) -> None:
    [info] = [n for n in listed(store) if n["state"] == "alive"]
    node_id = str(info["id"])
    assert info["workers"] == 2 and isinstance(info["pid"], int)
    table = taskdeck("nodes", "--store", store)
    assert table.returncode == 0
    header, row = table.stdout.splitlines()[1:3]
    assert header.split() == [
        "NODE",
        "HOST",
        "PID",
        "STATE",
        "WORKERS",
        "DONE/S",
        "CPU",
        "MEM",
        "SEEN",
    ]
    assert row.startswith(node_id) and "alive" in row and "/2" in row

    resized = taskdeck("node", node_id, "set-workers", "3", "--store", store)
    assert resized.returncode == 0, resized.stderr
    assert resized.stdout.strip() == f"{node_id}: workers 2 → 3"
    assert [n["workers"] for n in listed(store) if n["id"] == node_id] == [3]

    changed = taskdeck(
        "node", "all", "settings", "autoscale=on", "result_ttl=600", "--json", "--store", store
    )
    assert changed.returncode == 0, changed.stderr
    outcome = json.loads(changed.stdout)
    [result] = outcome["results"]
    assert result["node"] == node_id and result["ok"] and outcome["no_answer"] == []
    assert "autoscale=True" in result["outcome"] and "result_ttl=600" in result["outcome"]

    paused = taskdeck("node", "all", "pause", "emails", "--store", store)
    assert paused.returncode == 0 and paused.stdout.strip() == f"{node_id}: queue emails paused"


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
def test_node_commands_refuse_bad_input_with_one_line(store: str, node: dict[str, object]) -> None:
    [info] = listed(store)
    node_id = str(info["id"])
    missing = taskdeck("node", "nobody", "set-workers", "2", "--store", store)
    assert missing.returncode == 1  # well-formed, but no such node (issue 13: exit codes)
    assert f"no node 'nobody' on this store; nodes: {node_id}" in missing.stderr
    cases = [
        (["node", "all", "set-workers", "many"], "worker count must be a whole number"),
        (["node", "all", "set-workers", "1", "2"], "set-workers takes one worker count"),
        (["node", "all", "settings", "result_ttl"], "settings are NAME=VALUE"),
        (["node", "all", "settings", "bogus=1"], "bogus: unknown setting"),
        (["node", "all", "settings", "result_ttl=soon"], "result_ttl: must be a number"),
    ]
    for args, message in cases:  # what was typed is wrong: a usage error
        result = taskdeck(*args, "--store", store)
        assert result.returncode == 2, (args, result.stdout)
        assert message in result.stderr and "Traceback" not in result.stderr, result.stderr
    # the node itself refuses what only it can judge, and says why
    refused = taskdeck("node", node_id, "set-workers", "1000", "--store", store)
    assert refused.returncode == 1
    assert f"{node_id} refused set_workers: workers must be a whole number" in refused.stdout


def test_no_nodes_yet(tmp_path: Path) -> None:
    store = str(tmp_path / "empty.db")
    assert taskdeck("enqueue", "images.report", "--store", store).returncode == 0  # a store
    result = taskdeck("nodes", "--store", store)
    assert result.returncode == 0 and "no nodes" in result.stdout
    every = taskdeck("node", "all", "set-workers", "2", "--store", store)
    assert every.returncode == 1 and "no node is alive" in every.stderr
