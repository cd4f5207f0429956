"""The attached console (``taskdeck console --attach``) on a cluster: three real engines
(nodes) on one store in the test's event loop, and a console on an engine with no
workers. The Nodes panel shows them; the worker keys reach the selected node only,
and the autoscaler, settings (saved in the store) and pauses reach every node."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Static

from console.app import ConsoleApp
from console.panels.bottlenecks import BottlenecksPanel
from console.panels.nodes import NodesPanel, fitted_columns
from console.screens.enqueue import EnqueueScreen
from console.screens.help import HelpScreen
from console.screens.queues import QueuesScreen
from console.screens.settings import SettingsScreen
from console.screens.workers import WorkerCountScreen
from engine import Engine, Finding
from engine.model import NodeInfo

from .conftest import BOTH_BACKENDS, FAST, until
from .console_helpers import settle, started, text_of, toasts

WORKERS = {"node-a": 1, "node-b": 2, "node-c": 2}


@pytest.fixture
async def nodes(store: str | Path) -> AsyncIterator[dict[str, Engine]]:
    """Three engines with workers on the test's store, each a node of the cluster."""
    engines = {name: Engine(store, workers=n, name=name, **FAST) for name, n in WORKERS.items()}
    for engine in engines.values():
        await engine.start()
    yield engines
    for engine in engines.values():
        await engine.stop(grace=0)


def table_text(panel: NodesPanel) -> str:
    """The Nodes table as plain text: the header line, then one line per node."""
    header = "".join(column.label.plain for column in panel.columns.values())
    rows = ("".join(cell.plain for cell in panel.get_row_at(i)) for i in range(panel.row_count))
    return "\n".join([header, *rows])


def attached(store: str | Path) -> ConsoleApp:
    console = Engine(
        store, workers=0, strict_handlers=False, name="console", interface="console", **FAST
    )
    return ConsoleApp(console, attach=True)


async def shown(pilot: Pilot[ConsoleApp], check: Callable[[], bool], timeout: float = 3.0) -> None:
    """Refresh until ``check`` holds (the nodes' heartbeats come twice a second)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not shown in time"
        await pilot.pause(0.1)
        pilot.app.refresh_tick()
        await settle(pilot)


@contextlib.asynccontextmanager
async def console_on(store: str | Path) -> AsyncIterator[tuple[ConsoleApp, Pilot[ConsoleApp]]]:
    """An attached console on ``store`` (160×50), started, once it shows the 3 nodes."""
    app = attached(store)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        await nodes_shown(pilot, 3)
        yield app, pilot


async def nodes_shown(pilot: Pilot[ConsoleApp], alive: int) -> NodesPanel:
    """Refresh until the Nodes panel shows ``alive`` alive nodes."""
    app = pilot.app
    panel = app.query_one(NodesPanel)
    await shown(pilot, lambda: len(app.cluster.alive) == alive and panel.row_count >= alive, 5.0)
    return panel


@BOTH_BACKENDS
async def test_nodes_panel_shows_the_cluster_and_worker_keys_reach_the_selected_node(
    store: str | Path, nodes: dict[str, Engine]
) -> None:
    async with console_on(store) as (app, pilot):
        panel = app.query_one(NodesPanel)
        assert not app.query("#workers")  # the Nodes panel takes the Workers panel's place
        table = table_text(panel)
        for name, n in WORKERS.items():
            assert name in table and f"0/{n}" in table
        assert "alive" in table and "HOST" in table and "PID" in table
        header = text_of(app.query_one("#header"))
        assert "attached · 3 nodes" in header and "workers 0/5" in header
        assert app.engine.worker_count == 0  # the console runs nothing itself

        panel.focus()
        await pilot.press("down")
        chosen = panel.selected
        assert chosen is not None and panel.get_row_at(1)[0].plain.strip() == chosen.id
        target = nodes[chosen.id]
        before = {name: e.worker_count for name, e in nodes.items()}
        pressed = time.monotonic()
        await pilot.press("right_square_bracket")
        await until(lambda: target.worker_count == before[chosen.id] + 1, 1.0, "one more")
        assert time.monotonic() - pressed < 1.0
        await settle(pilot)  # the outcome is reported
        others = {name: e.worker_count for name, e in nodes.items() if name != chosen.id}
        assert others == {name: n for name, n in before.items() if name != chosen.id}
        n = before[chosen.id]
        assert f"{chosen.id}: set_workers {n + 1} sent" in toasts(app)
        assert f"{chosen.id}: workers {n} → {n + 1}" in toasts(app)

        await pilot.press("w")
        assert isinstance(app.screen, WorkerCountScreen)
        assert chosen.id in text_of(app.screen.query_one(".dialog-title"))
        app.screen.query_one("#count", Input).value = "4"
        await pilot.press("enter")
        await until(lambda: target.worker_count == 4, 1.0, "four workers")
        await settle(pilot)
        assert f"{chosen.id}: workers {n + 1} → 4" in toasts(app)
        assert {name: e.worker_count for name, e in nodes.items() if name != chosen.id} == others
        total = sum(WORKERS.values()) - n + 4  # the header sums the nodes' heartbeats
        await shown(pilot, lambda: f"workers 0/{total}" in text_of(app.query_one("#header")))


@BOTH_BACKENDS
async def test_pause_reaches_every_node_and_enqueue_takes_a_name(
    store: str | Path, nodes: dict[str, Engine]
) -> None:
    async with console_on(store) as (app, pilot):
        # no node has this handler: the task waits, so its queue stays on screen
        await pilot.press("e")
        await settle(pilot)
        assert isinstance(app.screen, EnqueueScreen)
        app.screen.query_one("#handler-name", Input).value = "reports.build"
        app.screen.query_one("#queue", Input).value = "reports"
        await pilot.press("ctrl+s")
        await settle(pilot)
        [task] = await app.engine.tasks(state="queued")
        assert (task.handler, task.queue) == ("reports.build", "reports")
        assert f"task {task.id} enqueued" in toasts(app)

        await pilot.press("p")
        assert isinstance(app.screen, QueuesScreen)
        pressed = time.monotonic()
        await pilot.press("enter")
        await until(
            lambda: all("reports" in e.snapshot().paused_queues for e in nodes.values()),
            1.0,
            "every node sees the pause",
        )
        assert time.monotonic() - pressed < 1.0
        assert any(t.startswith("queue reports paused") for t in toasts(app))
        await pilot.press("escape")


async def test_autoscale_and_settings_go_to_every_node(
    db_path: Path, nodes: dict[str, Engine]
) -> None:
    async with console_on(db_path) as (app, pilot):
        await pilot.press("a")
        await until(lambda: all(e.settings.autoscale for e in nodes.values()), 1.5, "autoscale")
        await settle(pilot)
        assert "saved for every node (3 alive): autoscale=True" in toasts(app)
        assert app.engine.worker_count == 0  # the console itself never scales: no workers

        await pilot.press("s")
        screen = app.screen
        assert isinstance(screen, SettingsScreen)
        screen.query_one("#in-result_ttl", Input).value = "600"
        screen.query_one("#in-queue_concurrency", Input).value = "reports=2"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert not isinstance(app.screen, SettingsScreen)
        await until(
            lambda: all(e.settings.result_ttl == 600 for e in nodes.values()), 1.5, "settings"
        )
        assert all(dict(e.settings.queue_concurrency) == {"reports": 2} for e in nodes.values())
        assert any(
            t.startswith("saved for every node (3 alive): result_ttl=600") for t in toasts(app)
        )
        # saved in the store, by the console: a node started now starts from it
        info = {i.name: i for i in await app.engine.settings_info()}
        assert (info["result_ttl"].source, info["result_ttl"].interface) == ("runtime", "console")
        late = Engine(db_path, workers=1, name="node-d", **FAST)
        async with late:
            assert late.settings.result_ttl == 600 and late.settings.autoscale
        # the form starts from what was saved
        await pilot.press("s")
        assert app.screen.query_one("#in-result_ttl", Input).value == "600"
        await pilot.press("escape")


async def test_the_settings_form_starts_from_what_the_nodes_report(
    db_path: Path, nodes: dict[str, Engine]
) -> None:
    # saved for every node, before any console looked
    await nodes["node-b"].update_settings(result_ttl=900, queue_rate_limits={"emails": "100/m"})
    # one node differs: a command to that node alone (not saved)
    await nodes["node-b"].send_command("update_settings", {"failed_ttl": 1000}, node="node-a")
    async with console_on(db_path) as (app, pilot):

        def reported(node: NodeInfo, name: str) -> object:
            return node.snapshot.get("settings", {}).get(name)

        await shown(
            pilot,
            lambda: (
                all(reported(n, "result_ttl") == 900 for n in app.cluster.alive)
                and [reported(n, "failed_ttl") for n in app.cluster.alive].count(1000) == 1
            ),
        )
        await pilot.press("s")
        form = app.screen
        assert isinstance(form, SettingsScreen)
        assert form.query_one("#in-result_ttl", Input).value == "900"
        assert form.query_one("#in-queue_rate_limits", Input).value == "emails=100/m"
        # where the nodes disagree, the form shows this console's own value
        assert form.query_one("#in-failed_ttl", Input).value == "604800"
        await pilot.press("escape")


async def test_a_nodes_own_finding_is_shown_and_its_fix_goes_to_that_node(
    store: str | Path, nodes: dict[str, Engine]
) -> None:
    async with console_on(store) as (app, pilot):
        panel = app.query_one(BottlenecksPanel)

        def idle_reported() -> list[Finding]:
            return [f for f in panel.findings if f.rule == "idle" and f.node == "node-b"]

        # node-b and node-c have 2 idle workers each: after a few seconds of history
        # their heartbeats carry an "Idle capacity" finding (node-a has only 1)
        await shown(pilot, lambda: bool(idle_reported()), 12.0)
        assert {f.node for f in panel.findings if f.rule == "idle"} <= {"node-b", "node-c"}
        prompts = [str(panel.get_option_at_index(i).prompt) for i in range(panel.option_count)]
        assert any(p.strip().startswith("INFO  node-b: Idle capacity") for p in prompts), prompts
        panel.focus()
        panel.highlighted = panel.findings.index(idle_reported()[0])
        pressed = time.monotonic()
        await pilot.press("x")
        await until(lambda: nodes["node-b"].worker_count == 1, 1.0, "node-b shrinks")
        assert time.monotonic() - pressed < 1.0
        await settle(pilot)
        assert nodes["node-c"].worker_count == 2 and nodes["node-a"].worker_count == 1
        assert "node-b: set_workers 1 sent" in toasts(app)
        assert "node-b: workers 2 → 1" in toasts(app)


async def test_a_stopped_node_is_shown_and_refuses_commands(
    db_path: Path, nodes: dict[str, Engine]
) -> None:
    async with console_on(db_path) as (app, pilot):
        await nodes["node-c"].stop()
        panel = await nodes_shown(pilot, 2)
        assert "2 of 3 nodes alive" in text_of(app.query_one("#header"))
        assert "1 stopped" in str(panel.border_title)
        rows = [panel.get_row_at(i) for i in range(panel.row_count)]
        [stopped] = [row for row in rows if row[0].plain.strip() == "node-c"]
        assert stopped[3].plain.strip() == "stopped" and "dim" in str(stopped[3].style)
        panel.focus()
        await pilot.press("down", "down")  # alive nodes first: the stopped one is last
        assert panel.selected is not None and panel.selected.id == "node-c"
        await pilot.press("right_square_bracket")
        await settle(pilot)
        assert any("node-c is stopped" in t and "takes no commands" in t for t in toasts(app))
        # a set_workers suggestion has no meaning here: it says where that is done
        assert app.control is not None
        finding = Finding("info", "Idle capacity", "", "", ("set_workers", {"n": 1}))
        assert await app.control.handles(finding)
        await pilot.pause()
        assert any("use ] [ w" in t for t in toasts(app))


async def test_no_nodes_yet(db_path: Path) -> None:
    app = attached(db_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await started(pilot)
        await pilot.pause(0.2)
        app.refresh_tick()
        await settle(pilot)
        assert "attached · no nodes yet" in text_of(app.query_one("#header"))
        panel = app.query_one(NodesPanel)
        assert "no nodes yet" in str(panel.border_subtitle)
        await pilot.press("right_square_bracket", "a")
        await settle(pilot)
        assert any(t.startswith("no node selected") for t in toasts(app))
        assert any(t.startswith("no node is alive") for t in toasts(app))
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        help_text = "".join(text_of(s) for s in app.screen.query(Static))
        assert "One worker more / less on the node selected in Nodes" in help_text
        await pilot.press("escape")
        await pilot.press("q")
        assert "the nodes keep running" in text_of(app.screen.query_one(".dialog-text"))
        await pilot.press("enter")
        await settle(pilot)


def test_node_columns_fit_the_panel() -> None:
    wide = fitted_columns(78)
    assert [c.key for c, _ in wide][:3] == ["node", "host", "pid"]
    assert sum(w for _, w in wide) + len(wide) - 1 <= 78
    narrow = fitted_columns(46)
    assert {c.key for c, _ in narrow} >= {"node", "state", "workers", "rate", "cpu"}
    assert sum(w for _, w in narrow) + len(narrow) - 1 <= 46
