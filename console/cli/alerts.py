"""``taskdeck alerts [--json]``, ``alerts ack ID``, ``alerts silence RULE --for
DURATION --note TEXT``, ``alerts test CHANNEL`` and ``alerts history [ID]``.

The rules and channels come from the ``[alerts]`` table of the configuration file
(``--config``, ``TASKDECK_CONFIG``, else ``./taskdeck.toml``; see
:func:`engine.config.load_config`).
"""

from __future__ import annotations

import argparse
import getpass
import json
import socket
import time
from dataclasses import asdict
from typing import Any

from console.cli.common import Access, with_store
from console.cli.errors import Refused, UserError
from console.cli.options import add_note, note_flag
from console.cli.schedules import when
from engine import AlertConfigError, Engine, parse_duration


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    alerts = sub.add_parser(
        "alerts", parents=[common], help="alerts: firing, pending and recent; ack, silence, test"
    )
    alerts.add_argument("--json", action="store_true", help="print JSON")
    alerts.add_argument(
        "--recent", default="24h", metavar="DURATION", help="resolved ones this recent (24h)"
    )
    alerts.set_defaults(func=cmd_alerts)
    actions = alerts.add_subparsers(dest="action", metavar="ACTION")
    ack = actions.add_parser("ack", parents=[common], help="acknowledge: stop its repeats")
    ack.add_argument("id", help="alert id (see taskdeck alerts)")
    ack.add_argument("--note", type=note_flag, help="why (kept with the alert)")
    ack.set_defaults(func=cmd_ack)
    silence = actions.add_parser("silence", parents=[common], help="notify nobody for a while")
    silence.add_argument("rule", help="rule name (as in [alerts.rules]; an SLO is slo:QUEUE)")
    silence.add_argument("--for", dest="duration", required=True, metavar="DURATION")
    silence.add_argument(
        "--note", type=note_flag, required=True, help="why (kept with the silence)"
    )
    silence.set_defaults(func=cmd_silence)
    test = actions.add_parser("test", parents=[common], help="send a test message to a channel")
    test.add_argument("channel", help="channel name (as in [alerts.channels])")
    add_note(test)
    test.set_defaults(func=cmd_test)
    history = actions.add_parser("history", parents=[common], help="transitions and deliveries")
    history.add_argument("id", nargs="?", default="0", help="one alert's (default: all)")
    history.add_argument("--json", action="store_true", help="print JSON")
    history.set_defaults(func=cmd_history)


def actor() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


def _seconds(text: str, what: str) -> float:
    try:
        return parse_duration(text, what)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def cmd_alerts(args: argparse.Namespace) -> int:
    recent = _seconds(args.recent, "--recent")

    async def work(engine: Engine) -> int:
        rows = await engine.alerts.recent(recent)
        if args.json:
            print(json.dumps({"alerts": [asdict(a) for a in rows]}))
            return 0
        if not rows:
            print("no alerts firing, pending or recent")
            return 0
        now = time.time()
        print(f"{'id':>5} {'state':<9} {'severity':<9} {'rule':<24} {'key':<20} "
              f"{'since':>10} {'notified':>10}  summary")  # fmt: skip
        for a in rows:
            state = a.state + ("*" if a.acked_at is not None else "")
            notified = when(a.last_notified, now) if a.last_notified else "never"
            print(
                f"{a.id:>5} {state:<9} {a.severity:<9} {a.rule[:24]:<24} {a.key[:20]:<20} "
                f"{when(a.since, now):>10} {notified:>10}  {a.summary}"
            )
        if any(a.acked_at is not None for a in rows):
            print("* acknowledged")
        return 0

    return with_store(args, Access.READ, work)


def cmd_ack(args: argparse.Namespace) -> int:
    async def work(engine: Engine) -> int:
        alert = await engine.alerts.ack(args.id, by=actor(), note=args.note or "")
        print(f"alert {alert.id} ({alert.rule} {alert.key}, {alert.state}): acknowledged")
        return 0

    return with_store(args, Access.WRITE, work)


def cmd_silence(args: argparse.Namespace) -> int:
    seconds = _seconds(args.duration, "--for")

    async def work(engine: Engine) -> int:
        if not engine.alerts.config.rules:
            raise Refused("no alert rules are configured (the [alerts] table of taskdeck.toml)")
        found = await engine.alerts.silence(args.rule, seconds, args.note or "", by=actor())
        until = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(found.until))
        print(f"{found.rule}: silenced until {until} ({found.note})")
        return 0

    return with_store(args, Access.WRITE, work)


def cmd_test(args: argparse.Namespace) -> int:
    async def work(engine: Engine) -> int:
        try:
            outcome = await engine.alerts.test(args.channel)
        except AlertConfigError as exc:
            raise UserError(str(exc)) from None
        except Exception as exc:
            raise Refused(f"channel {args.channel!r}: {exc}") from None
        print(f"{args.channel}: test message sent ({outcome})")
        return 0

    return with_store(args, Access.WRITE, work)


def cmd_history(args: argparse.Namespace) -> int:
    try:
        alert_id = int(args.id)
    except ValueError:
        raise UserError(f"an alert id is a whole number; got {args.id!r}") from None

    async def work(engine: Engine) -> int:
        rows = await engine.alerts.history(alert_id, 200)
        if args.json:
            print(json.dumps({"events": [asdict(e) for e in rows]}))
            return 0
        now = time.time()
        for e in rows:
            alert = f"alert {e.alert_id}" if e.alert_id else "-"
            channel = f" → {e.channel}" if e.channel else ""
            print(f"{when(e.at, now):>10}  {alert:<10} {e.kind}{channel}  {e.detail}")
        if not rows:
            print("no alert history")
        return 0

    return with_store(args, Access.READ, work)
