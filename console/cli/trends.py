"""``taskdeck trends`` and ``taskdeck stats``: the durable metrics history (see
``engine.history``) as a table per period, or totals for a range."""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from typing import Any

from console.cli.common import Access, with_store
from console.cli.errors import UserError
from console.format import ago
from engine import Engine, HistoryStats, TrendPoint, parse_span, parse_step

HEAD = (
    f"{'period':<16} {'runs':>7} {'ok':>7} {'failed':>6} {'retry':>5} {'t/o':>4} "
    f"{'success':>7} {'/min':>7} {'run p50':>7} {'run p95':>7} {'wait p95':>8} {'backlog':>7}"
)


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    trends = sub.add_parser(
        "trends",
        parents=[common],
        help="the metrics history per minute, hour or day (runs, success rate, p95s, backlog)",
        description="taskdeck trends [--handler H] [--queue Q] [--since 24h] [--step 1h] [--json]",
    )
    trends.add_argument("--handler", metavar="H", help="only this handler")
    trends.add_argument("--queue", metavar="Q", help="only this queue")
    trends.add_argument("--since", default="24h", help="how far back (90m, 24h, 7d; default 24h)")
    trends.add_argument("--step", default="1h", help="one row per 1m, 1h or 1d (default 1h)")
    trends.add_argument("--json", action="store_true", help="print JSON")
    trends.set_defaults(func=cmd_trends)
    stats = sub.add_parser(
        "stats",
        parents=[common],
        help="totals over a range: success rate, mean and p95 run time, tasks per minute",
        description="taskdeck stats [--handler H] [--queue Q] [--since 1h] [--json]",
    )
    stats.add_argument("--handler", metavar="H", help="only this handler")
    stats.add_argument("--queue", metavar="Q", help="only this queue")
    stats.add_argument("--since", default="1h", help="how far back (30m, 1h, 7d; default 1h)")
    stats.add_argument("--json", action="store_true", help="print JSON")
    stats.set_defaults(func=cmd_stats)


def _checked(args: argparse.Namespace, step: bool) -> tuple[float, int]:
    try:
        return parse_span(args.since), parse_step(args.step) if step else 60
    except ValueError as exc:
        raise UserError(str(exc)) from None


def cmd_trends(args: argparse.Namespace) -> int:
    since, step = _checked(args, step=True)

    async def work(engine: Engine) -> int:
        try:
            points = await engine.history.trends(args.handler, args.queue, since, step)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        if args.json:
            print(json.dumps({"step": step, "points": [point_dict(p) for p in points]}))
            return 0
        print(HEAD)
        for p in points:
            print(row(p))
        return 0

    return with_store(args, Access.READ, work)


def cmd_stats(args: argparse.Namespace) -> int:
    since, _ = _checked(args, step=False)

    async def work(engine: Engine) -> int:
        found = await engine.history.stats(args.handler, since, args.queue)
        if args.json:
            print(json.dumps(asdict(found)))
            return 0
        print(summary(found))
        return 0

    return with_store(args, Access.READ, work)


def point_dict(p: TrendPoint) -> dict[str, Any]:
    return {**asdict(p), "success_rate": p.success_rate, "throughput": p.throughput}


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def row(p: TrendPoint) -> str:
    at = time.strftime("%Y-%m-%d %H:%M", time.localtime(p.t))
    backlog = "–" if p.backlog is None else f"{p.backlog:,}"
    return (
        f"{at:<16} {p.runs:>7,} {p.successes:>7,} {p.failures:>6,} {p.retries:>5,} "
        f"{p.timeouts:>4,} {_pct(p.success_rate):>7} {p.throughput:>7.1f} "
        f"{ago(p.run_p50):>7} {ago(p.run_p95):>7} {ago(p.wait_p95):>8} {backlog:>7}"
    )


def summary(s: HistoryStats) -> str:
    what = " ".join(
        x for x in (f"handler {s.handler}" if s.handler else "", f"queue {s.queue}" if s.queue
                    else "") if x
    ) or "every handler"  # fmt: skip
    span = ago(s.until - s.since)
    return "\n".join(
        (
            f"{what}, last {span} (to {time.strftime('%H:%M', time.localtime(s.until))})",
            f"  runs         {s.runs:,} ({s.successes:,} ok, {s.failures:,} failed, "
            f"{s.retries:,} retried, {s.timeouts:,} timed out)",
            f"  success rate {_pct(s.success_rate)}",
            f"  run time     mean {ago(s.run_mean)}, p50 {ago(s.run_p50)}, p95 {ago(s.run_p95)}",
            f"  wait p95     {ago(s.wait_p95)}",
            f"  throughput   {s.per_minute:.2f} tasks/min",
        )
    )
