"""The alert state machine (pure) and the alert configuration's checks."""

from __future__ import annotations

import re
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest

from engine.alerts.config import AlertConfigError, alert_config
from engine.alerts.machine import Alert, step
from engine.alerts.rules import Rule, Verdict, parse_rule


def run(rule: Rule, timeline: list[tuple[float, bool]], silenced: bool = False) -> list[str]:
    """Feed verdicts at the given times; return 'time:transition/notice' strings."""
    alert: Alert | None = None
    out = []
    for now, active in timeline:
        s = step(alert, rule, Verdict(rule.name, "store", active, 1.0, ""), now, silenced)
        if s.alert is not None:
            alert = replace(s.alert, id=alert.id if alert and alert.id else 1)
        if s.transition or s.notice:
            out.append(f"{now:g}:{s.transition}/{s.notice}")
    return out


def test_fires_only_after_the_condition_held_for_its_duration_then_resolves_once() -> None:
    rule = parse_rule("r", "backlog > 1 for 2s")
    assert run(
        rule,
        [
            (0, True),
            (1, True),
            (2, True),
            (3, True),
            (4, False),
            (5, False),
            (6, False),
            (7, False),
        ],
    ) == [
        "0:pending/None",
        "2:firing/firing",
        "6:resolved/resolved",
    ]


def test_a_blip_while_pending_never_notifies() -> None:
    rule = parse_rule("r", "backlog > 1 for 2s")
    assert run(rule, [(0, True), (1, False), (2, True)]) == [
        "0:pending/None",
        "1:cleared/None",
        "2:pending/None",
    ]


def test_a_short_clear_while_firing_does_not_resolve() -> None:
    rule = parse_rule("r", "backlog > 1 for 2s")
    assert run(rule, [(0, True), (2, True), (3, False), (4, True), (6, True)]) == [
        "0:pending/None",
        "2:firing/firing",
    ]


def test_repeats_respect_the_frequency_cap() -> None:
    rule = parse_rule("r", "backlog > 1 repeat 10s")
    times = [(float(t), True) for t in range(0, 31, 2)]
    assert run(rule, times) == ["0:firing/firing", "10:None/repeat", "20:None/repeat",
                                "30:None/repeat"]  # fmt: skip
    assert run(parse_rule("r", "backlog > 1"), times) == ["0:firing/firing"]


def test_an_acknowledged_alert_stops_repeating_but_still_resolves() -> None:
    rule = parse_rule("r", "backlog > 1 repeat 10s")
    first = step(None, rule, Verdict("r", "store", True, 2, ""), 0, False)
    assert first.alert is not None
    acked = replace(first.alert, id=1, acked_at=1.0, acked_by="me")
    assert step(acked, rule, Verdict("r", "store", True, 2, ""), 20, False).notice is None
    done = step(acked, rule, Verdict("r", "store", False, 0, ""), 21, False)
    assert (done.transition, done.notice) == ("resolved", "resolved")


def test_a_silenced_rule_records_transitions_and_notifies_when_the_silence_ends() -> None:
    rule = parse_rule("r", "backlog > 1")
    fired = step(None, rule, Verdict("r", "store", True, 2, ""), 0, True)
    assert (fired.transition, fired.notice) == ("firing", None)
    assert fired.alert is not None
    later = step(fired.alert, rule, Verdict("r", "store", True, 2, ""), 5, False)
    assert later.notice == "firing"
    quiet = step(fired.alert, rule, Verdict("r", "store", False, 0, ""), 5, True)
    assert (quiet.transition, quiet.notice) == ("resolved", None)


def test_a_full_configuration_is_read() -> None:
    config = alert_config(
        {
            "repeat": "30m",
            "bottlenecks": "warning",
            "channels": {
                "ops": {"type": "webhook", "url": "https://ops.example.com/hook"},
                "chat": {"type": "slack", "url": "https://hooks.slack.com/services/x"},
                "mail": {
                    "type": "email",
                    "host": "smtp.example.com",
                    "from": "a@b.c",
                    "to": ["x@y.z"],
                    "password_env": "SMTP_PASSWORD",
                },
            },
            "rules": {"big": "backlog > 1000 for 2m notify ops", "stall": "throughput == 0"},
            "slo": {"images": "p95 wait < 30s"},
        }
    )
    assert set(config.channels) == {"ops", "chat", "mail"}
    by_name = {r.name: r for r in config.rules}
    assert by_name["big"].channels == ("ops",)
    assert by_name["stall"].channels == ("ops", "chat", "mail") and by_name["stall"].repeat == 1800
    assert by_name["slo:images"].kind == "slo" and by_name["bottlenecks"].kind == "bottleneck"


def test_every_problem_in_a_configuration_is_reported_at_once() -> None:
    with pytest.raises(AlertConfigError) as caught:
        alert_config(
            {
                "channels": {
                    "nourl": {"type": "webhook"},
                    "ftp": {"type": "slack", "url": "ftp://example.com/x"},
                    "odd": {"type": "pager"},
                    "mail": {
                        "type": "email",
                        "host": "h",
                        "from": "a@b",
                        "to": ["x@y"],
                        "password": "hunter2",
                    },
                },
                "rules": {"bad": "backlog > 5 for soon", "who": "backlog > 5 notify nobody"},
                "repeat": "often",
                "colour": "red",
            }
        )
    text = "\n".join(caught.value.problems)
    assert "alerts.channels.nourl has no url" in text
    assert "alerts.channels.ftp.url must be an http:// or https:// URL" in text
    assert "alerts.channels.odd.type must be one of webhook, slack, email" in text
    assert "never the password" in text
    assert "bad duration 'soon'" in text
    assert "notifies unknown channel 'nobody'" in text
    assert "bad alerts.repeat 'often'" in text
    assert "alerts.colour: unknown key" in text


def test_the_readme_example_configuration_is_valid() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    [block] = re.findall(r"```toml\n(.*?)```", readme[readme.index("### Alerts") :], re.S)[:1]
    config = alert_config(tomllib.loads(block)["alerts"])
    assert len(config.channels) == 2
    kinds = [r.kind for r in config.rules]
    assert kinds.count("rule") == 3 and kinds.count("slo") == 1 and "bottleneck" in kinds
