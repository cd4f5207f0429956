"""Routes: handler name patterns to queues, first match wins; a handler's own queue
beats a route and an enqueue's queue beats both; bad rules are refused by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine import ConfigError, Engine, Settings, SettingsError, chain, group, load_config

from .conftest import EngineFactory, taskdeck

ROUTES = {"reports.daily": "urgent", "reports.*": "reports", "images.resiz?": "cpu"}


def _register(engine: Engine) -> None:
    for name in ("reports.daily", "reports.weekly", "images.resize", "mail.send"):
        engine.task(name=name)(_noop)
    engine.task(name="reports.audit", queue="audit")(_noop)  # its own queue


async def _noop(previous: object = None) -> None:  # a chain step can take a result
    return None


async def _queues(engine: Engine, **given: str) -> dict[str, str]:
    """The queue each handler's task went to (``given``: a queue= at enqueue)."""
    out = {}
    for name in ("reports.daily", "reports.weekly", "images.resize", "mail.send", "reports.audit"):
        record = await engine.get(await engine.enqueue(name, queue=given.get(name)))
        out[name] = record.queue
    return out


async def test_each_rule_and_the_precedence(make_engine: EngineFactory) -> None:
    # Given routes where a specific rule comes before a wider one
    engine = make_engine(workers=0, routes=ROUTES)
    _register(engine)
    async with engine:
        # Then the first matching rule picks the queue, an unmatched handler keeps
        # "default", and a handler registered with queue= keeps its own
        assert await _queues(engine) == {
            "reports.daily": "urgent",
            "reports.weekly": "reports",
            "images.resize": "cpu",
            "mail.send": "default",
            "reports.audit": "audit",
        }
        # and a queue named at enqueue beats both the route and the handler's own
        given = await _queues(engine, **{"reports.daily": "adhoc", "reports.audit": "adhoc"})
        assert given["reports.daily"] == given["reports.audit"] == "adhoc"
        # When the order is reversed at runtime, the wider rule wins from now on
        await engine.update_settings(routes={"reports.*": "reports", "reports.daily": "urgent"})
        assert (await _queues(engine))["reports.daily"] == "reports"


async def test_routes_keep_their_order_when_saved(
    make_engine: EngineFactory, db_path: Path
) -> None:
    order = {"z.*": "last", "a.*": "first"}
    async with make_engine(workers=0) as engine:
        await engine.update_settings(routes=order)
    async with make_engine(workers=0) as again:  # reads the saved change back
        assert list(again.settings.routes.items()) == list(order.items())


def test_the_config_file_takes_a_routes_table(tmp_path: Path) -> None:
    path = tmp_path / "taskdeck.toml"
    path.write_text('[engine.routes]\n"reports.*" = "reports"\n"images.resize" = "cpu"\n')
    routes = Engine(config=load_config(path, environ={}), workers=0).settings.routes
    assert list(routes.items()) == [("reports.*", "reports"), ("images.resize", "cpu")]


@pytest.mark.parametrize(
    ("routes", "message"),
    [
        ({"": "q"}, "a route pattern is empty"),
        ({"reports/*": "q"}, "route pattern 'reports/*' has '/', which is not allowed"),
        ({"img[12": "q"}, "route pattern 'img[12' has an unclosed '['"),
        ({"reports.*": "bad queue"}, "route 'reports.*': queue name 'bad queue' is not allowed"),
        ("reports.*", "'reports.*' is not pattern=queue"),
        (["reports.*"], "must be pattern=queue pairs such as"),
    ],
)
def test_a_bad_rule_is_refused_with_what_is_allowed(routes: object, message: str) -> None:
    with pytest.raises(SettingsError) as info:
        Settings(routes=routes)
    assert message in info.value.errors["routes"]


def test_an_unknown_key_is_named(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as info:
        Settings(route={"a.*": "q"})
    assert info.value.errors == {"route": "unknown setting; did you mean 'routes'?"}
    path = tmp_path / "taskdeck.toml"
    path.write_text('[engine]\nroute = {"a.*" = "q"}\n')
    with pytest.raises(ConfigError) as bad:
        load_config(path, environ={})
    assert "did you mean 'routes'?" in str(bad.value)


async def test_taskdeck_routes_lists_the_rules_and_what_each_catches(db_path: Path) -> None:
    async with Engine(db_path, workers=0):
        pass  # a store for the command to read
    result = taskdeck(
        "routes", "--json", "--store", str(db_path), "--set", "routes=images.*=cpu, mail.*=mail"
    )
    assert result.returncode == 0, result.stderr
    table = json.loads(result.stdout)
    first, second = table["routes"]
    # the demo's images.* handlers all name their own queue: the rule catches none
    assert (first["pattern"], first["queue"], first["handlers"]) == ("images.*", "cpu", [])
    assert "images.resize" in first["overridden"] and second["handlers"] == []
    rows = {r["handler"]: r for r in table["handlers"]}
    assert rows["images.resize"] == {
        "handler": "images.resize",
        "queue": "images",
        "via": "handler",
    }
    bad = taskdeck("routes", "--store", str(db_path), "--set", "routes=a b=cpu")
    assert bad.returncode != 0 and "route pattern 'a b' has ' '" in bad.stderr


async def test_workflow_steps_are_routed_too(make_engine: EngineFactory) -> None:
    engine = make_engine(workers=0, routes=ROUTES)
    _register(engine)
    async with engine:
        parallel = await engine.enqueue_workflow(
            group(("reports.weekly", {}), ("images.resize", {}), ("mail.send", {}))
        )
        # a later step of a chain waits for the one before: routed all the same
        steps = await engine.enqueue_workflow(chain(("mail.send", {}), ("reports.daily", {})))
        flows = [*parallel.steps, *steps.steps]
        queues = [(await engine.get(step.task_id)).queue for step in flows]
    assert queues == ["reports", "cpu", "default", "default", "urgent"]
