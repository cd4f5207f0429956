"""Alert rules: the syntax, its errors, and evaluation against observations (pure)."""

from __future__ import annotations

import pytest

from engine.alerts.rules import (
    Observation,
    RuleError,
    Scope,
    bottleneck_rule,
    evaluate,
    parse_duration,
    parse_rule,
    parse_slo,
)


def seen(**values: dict[str, float | None]) -> Observation:
    table: dict[tuple[str, str], dict[str, float | None]] = {}
    for key, measures in values.items():
        kind, _, name = key.partition("_")
        table[(kind, name)] = measures
    return Observation(0.0, table)


def test_a_full_rule_is_read_with_every_part() -> None:
    rule = parse_rule(
        "images", "queue:images backlog > 1000 for 2m severity critical notify ops,slack repeat 30m"
    )
    assert rule.condition.scope == Scope("queue", "images")
    assert (rule.condition.measure, rule.condition.op, rule.condition.value) == (
        "backlog",
        ">",
        1000,
    )
    assert rule.hold == 120 and rule.repeat == 1800
    assert rule.severity == "critical" and rule.channels == ("ops", "slack")


def test_defaults_are_the_whole_store_warning_no_hold_notify_once() -> None:
    rule = parse_rule("r", "backlog>5")
    assert rule.condition.scope == Scope() and rule.hold == 0
    assert rule.severity == "warning" and rule.repeat is None and rule.channels == ()


@pytest.mark.parametrize(
    ("text", "measure", "value"),
    [
        ("rss > 512MB", "rss", 512 * 1024**2),
        ("failure_rate > 5%", "failure_rate", 0.05),
        ("failure_rate > 0.2", "failure_rate", 0.2),
        ("throughput < 600/m", "throughput", 10.0),
        ("loop_lag > 500ms", "loop_lag", 0.5),
        ("queue:a p95 wait > 30s", "wait_p95", 30.0),
        ("oldest_wait >= 1h", "oldest_wait", 3600.0),
        ("dead_nodes > 0", "dead_nodes", 0.0),
    ],
)
def test_units_are_converted(text: str, measure: str, value: float) -> None:
    c = parse_rule("r", text).condition
    assert c.measure == measure and c.value == pytest.approx(value)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("backlogg > 5", ["position 1", "unknown measure 'backlogg'", "backlog, oldest_wait"]),
        ("backlog > 5 for 2x", ["position 13", "bad duration '2x'"]),
        ("backlog >> 5", ["position 9", "found '>>'"]),
        ("backlog > x5", ["position 11", "expected a number for backlog, found 'x5'"]),
        ("backlog = 5", ["position 9", "comparison"]),
        ("backlog > 5 severity loud", ["unknown severity 'loud'", "info, warning, critical"]),
        ("backlog > 5 every 2m", ["position 13", "unexpected 'every'"]),
        ("backlog > 5 for 1m for 2m", ["'for' is given twice"]),
        ("rss > 5 parsecs", ["unexpected 'parsecs'"]),
        ("rss > 5XB", ["unknown unit 'xb'"]),
        ("pool:x backlog > 1", ["bad scope 'pool:x'"]),
        ("handler:x backlog > 1", ["backlog is measured per store, queue, not per handler"]),
        ("backlog >", ["expected a value, found the end"]),
        ("", ["is empty", "measures: backlog"]),
    ],
)
def test_a_malformed_rule_names_the_position_and_what_is_allowed(
    text: str, says: list[str]
) -> None:
    with pytest.raises(RuleError) as caught:
        parse_rule("r", text)
    for part in says:
        assert part in str(caught.value)


def test_a_rule_holds_only_when_its_value_crosses_the_threshold() -> None:
    rule = parse_rule("r", "backlog > 10")
    assert [v.active for v in evaluate(rule, seen(store_={"backlog": 11}))] == [True]
    assert [v.active for v in evaluate(rule, seen(store_={"backlog": 10}))] == [False]
    assert [v.active for v in evaluate(rule, seen(store_={"backlog": None}))] == [False]


def test_while_condition_gates_the_rule() -> None:
    rule = parse_rule("stall", "throughput == 0 for 5m while backlog > 0")
    assert evaluate(rule, seen(store_={"throughput": 0, "backlog": 3}))[0].active
    assert not evaluate(rule, seen(store_={"throughput": 0, "backlog": 0}))[0].active


def test_a_wildcard_scope_gives_one_verdict_per_queue() -> None:
    rule = parse_rule("r", "queue:* backlog > 5 while throughput == 0")
    verdicts = evaluate(
        rule,
        seen(
            queue_a={"backlog": 9, "throughput": 0},
            queue_b={"backlog": 9, "throughput": 2},
            queue_c={"backlog": 1, "throughput": 0},
        ),
    )
    assert {v.key: v.active for v in verdicts} == {
        "queue:a": True,
        "queue:b": False,
        "queue:c": False,
    }


def test_an_slo_is_a_rule_that_fires_when_the_objective_is_missed() -> None:
    rule = parse_slo("images", "p95 wait < 30s")
    assert rule.kind == "slo" and rule.condition.scope == Scope("queue", "images")
    assert evaluate(rule, seen(queue_images={"wait_p95": 31}))[0].active
    assert not evaluate(rule, seen(queue_images={"wait_p95": 29}))[0].active
    with pytest.raises(RuleError, match="p95 wait < 30s"):
        parse_slo("images", "p95 wait > 30s")


def test_the_bottleneck_switch_fires_for_findings_at_or_above_its_level() -> None:
    rule = bottleneck_rule(True)
    assert rule is not None
    obs = Observation(
        0.0,
        {},
        (("info", "a", "A"), ("warning", "saturated", "Saturated"), ("critical", "c", "C")),
    )
    assert [v.key for v in evaluate(rule, obs)] == ["finding:saturated", "finding:c"]
    critical = bottleneck_rule("critical")
    assert critical is not None and [v.key for v in evaluate(critical, obs)] == ["finding:c"]
    assert bottleneck_rule(False) is None
    with pytest.raises(RuleError, match="true, false, 'warning' or 'critical'"):
        bottleneck_rule("loud")


def test_durations() -> None:
    assert parse_duration("90") == 90 and parse_duration("2m") == 120
    with pytest.raises(ValueError, match="bad silence '2 weeks'"):
        parse_duration("2 weeks", "silence")
