"""Every bottleneck rule from synthetic inputs: fires when it should, stays quiet when
it should not, and its evidence carries the right numbers."""

from __future__ import annotations

import dataclasses
from typing import Any

from engine import Settings
from engine.bottleneck import Inputs, find_bottlenecks, workers_needed
from engine.metrics import HandlerStats, MetricsView, QueueStats
from engine.resources import ChildSample, ResourceSample


def handler(name: str = "images.resize", **changes: Any) -> HandlerStats:
    base = HandlerStats(
        name=name,
        executor="async",
        runs=100,
        successes=100,
        failures=0,
        retries=0,
        timeouts=0,
        run_mean=0.2,
        run_min=0.1,
        run_max=0.4,
        run_p50=0.2,
        run_p95=0.3,
        run_p99=0.35,
        wait_p50=0.01,
        wait_p95=0.05,
        cpu_per_run=None,
        cpu_ratio=None,
        max_step=0.001,
        impact=0.3,
        attempts_last_minute=60,
        failures_last_minute=0,
        top_error=None,
        top_error_count=0,
    )
    return dataclasses.replace(base, **changes)


def queue(name: str = "default", **changes: Any) -> QueueStats:
    base = QueueStats(
        name,
        depth=0,
        paused=False,
        oldest_age=None,
        arrival_rate=10.0,
        completion_rate=10.0,
        depth_trend=0.0,
    )
    return dataclasses.replace(base, **changes)


def view(**changes: Any) -> MetricsView:
    base = MetricsView(
        at=0.0,
        worker_count=8,
        busy_workers=4,
        utilization=0.5,
        arrival_rate=20.0,
        done_rate=20.0,
        depth=0,
        depth_trend=0.0,
        handlers={},
        queues={},
        series={},
        store_latency_p99=0.002,
        mean_run=0.2,
    )
    return dataclasses.replace(base, **changes)


def resources(**changes: Any) -> ResourceSample:
    base = ResourceSample(
        at=0.0,
        process_cpu=30.0,
        system_cpu=40.0,
        cpu_per_core=(40.0, 40.0),
        rss=80 * 2**20,
        memory_percent=40.0,
    )
    return dataclasses.replace(base, **changes)


def findings(
    v: MetricsView,
    r: ResourceSample | None = None,
    lag: float = 0.0,
    window: int = 30,
    queues: dict[str, str] | None = None,
    **settings: Any,
) -> dict[str, list[Any]]:
    found = find_bottlenecks(
        Inputs(v, r or resources(), lag, Settings(**settings), window, queues or {})
    )
    by_rule: dict[str, list[Any]] = {}
    for f in found:
        by_rule.setdefault(f.rule, []).append(f)
    return by_rule


def test_a_calm_engine_has_no_findings() -> None:
    assert findings(view(handlers={"a": handler("a"), "b": handler("b")})) == {}


# -- saturation ------------------------------------------------------------------------


def test_saturated_and_growing_suggests_littles_law_worker_count() -> None:
    # 250 arrivals/s × 0.31 s ÷ 80 % = 96.9 → 97 workers
    v = view(
        worker_count=64,
        busy_workers=64,
        utilization=0.98,
        arrival_rate=250.0,
        done_rate=130.0,
        depth=4210,
        depth_trend=120.0,
        mean_run=0.31,
    )
    [f] = findings(v)["saturated"]
    assert f.severity == "critical"  # arrivals outrun completions: it never drains
    assert f.action == ("set_workers", {"n": 97})
    assert "busy 64/64 (98% over 30 s)" in f.evidence
    assert "backlog 4,210, growing 120/s" in f.evidence
    assert "arrivals 250/s, done 130/s" in f.evidence
    assert "Add workers: 97 (Little's law: 250/s × 310 ms ÷ 80 % target = 97)" in f.suggestion
    assert "never drains" in f.suggestion


def test_saturated_but_draining_is_a_warning_with_a_drain_time() -> None:
    v = view(
        worker_count=10,
        busy_workers=10,
        utilization=0.95,
        arrival_rate=40.0,
        done_rate=50.0,
        depth=600,
        depth_trend=2.0,
        mean_run=0.25,
    )
    [f] = findings(v)["saturated"]
    assert f.severity == "warning"
    assert "drains in 60.0 s" in f.suggestion  # 600 ÷ (50 − 40)/s


def test_saturation_needs_load_history_and_growth() -> None:
    busy = dict(worker_count=4, busy_workers=4, utilization=0.99, depth=50, mean_run=0.2)
    assert "saturated" not in findings(view(**busy, depth_trend=-3.0))  # shrinking backlog
    assert "saturated" not in findings(view(**busy, depth_trend=5.0), window=2)  # too early
    assert "saturated" not in findings(view(**{**busy, "utilization": 0.7}, depth_trend=5.0))


def test_needed_workers_are_capped_at_max_workers() -> None:
    v = view(
        worker_count=8,
        busy_workers=8,
        utilization=1.0,
        arrival_rate=1000.0,
        done_rate=40.0,
        depth=5000,
        depth_trend=900.0,
        mean_run=0.2,
    )
    [f] = findings(v, max_workers=16)["saturated"]
    assert f.action == ("set_workers", {"n": 16})
    assert "capped at max_workers 16" in f.suggestion


def test_littles_law() -> None:
    assert workers_needed(250, 0.31, 80) == 97
    assert workers_needed(0, 0.2, 80) == 1


# -- idle capacity ---------------------------------------------------------------------


def test_idle_capacity_suggests_fewer_workers() -> None:
    v = view(worker_count=64, busy_workers=1, utilization=0.03, arrival_rate=5.0, mean_run=0.2)
    [f] = findings(v)["idle"]
    assert f.severity == "info" and f.action == ("set_workers", {"n": 2})  # 5 × 0.2 ÷ 0.8 → 2
    assert "1.9 of 64 workers busy on average (3% over 30 s)" in f.evidence


def test_idle_capacity_quiet_when_busy_or_backlogged_or_small() -> None:
    assert "idle" not in findings(view(worker_count=64, utilization=0.5, arrival_rate=5))
    assert "idle" not in findings(view(worker_count=64, utilization=0.05, depth=3))
    assert "idle" not in findings(view(worker_count=1, utilization=0.0, arrival_rate=0))
    assert "idle" not in findings(view(worker_count=4, utilization=0.01), min_workers=4)


# -- event loop ------------------------------------------------------------------------


def test_blocking_async_handler_is_named() -> None:
    v = view(
        handlers={
            "images.resize": handler(max_step=0.21),
            "mail.send": handler("mail.send", max_step=0.002),
            "reports.build": handler("reports.build", executor="thread", max_step=None),
        }
    )
    [f] = findings(v, lag=0.19)["loop_blocked"]
    assert f.title == "images.resize blocks the event loop" and f.severity == "warning"
    assert "lag up to 190 ms" in f.evidence and "for 210 ms in one step" in f.evidence
    assert "executor='thread'" in f.suggestion and "executor='process'" in f.suggestion


def test_loop_rule_needs_both_lag_and_a_long_step() -> None:
    v = view(handlers={"h": handler("h", max_step=0.3)})
    assert "loop_blocked" not in findings(v, lag=0.02)
    assert "loop_blocked" not in findings(view(handlers={"h": handler("h")}), lag=0.5)
    assert (
        findings(view(handlers={"h": handler("h", max_step=1.5)}), lag=1.4)["loop_blocked"][
            0
        ].severity
        == "critical"
    )


# -- CPU-bound, dominance --------------------------------------------------------------


def test_cpu_bound_thread_handler_is_told_to_use_processes() -> None:
    v = view(handlers={"filter": handler("filter", executor="thread", cpu_ratio=0.95, impact=0.6)})
    [f] = findings(v)["cpu_bound"]
    assert f.severity == "warning" and "CPU time is 95% of its run time" in f.evidence
    assert "executor='process'" in f.suggestion


def test_io_bound_thread_handler_is_not_cpu_bound() -> None:
    v = view(handlers={"fetch": handler("fetch", executor="thread", cpu_ratio=0.05)})
    assert "cpu_bound" not in findings(v)


def test_one_handler_dominating_worker_time() -> None:
    v = view(
        utilization=0.8,
        handlers={
            "images.filter": handler("images.filter", impact=0.72, run_mean=1.5),
            "mail.send": handler("mail.send", impact=0.28),
        },
    )
    [f] = findings(v)["dominant"]
    assert "72% of all worker busy time" in f.evidence
    quiet = view(utilization=0.1, handlers=v.handlers)  # nobody cares when idle
    assert "dominant" not in findings(quiet)


# -- retry storm -----------------------------------------------------------------------


def test_retry_storm_names_the_handler_and_top_error() -> None:
    h = handler(
        "images.upload",
        attempts_last_minute=52,
        failures_last_minute=31,
        top_error="ConnectionError: storage returned 503",
        top_error_count=24,
    )
    [f] = findings(view(handlers={h.name: h}), queues={"images.upload": "uploads"})["retry_storm"]
    assert f.severity == "critical"  # 60 % ≥ 50 %
    assert "31 of 52 attempts failed in the last minute (60%" in f.evidence
    assert "top error (24×): ConnectionError: storage returned 503" in f.evidence
    assert f.action == ("pause", {"queue": "uploads"})


def test_a_few_failures_are_not_a_storm() -> None:
    few = handler("x", attempts_last_minute=6, failures_last_minute=3)  # below 5 failures
    rare = handler("y", attempts_last_minute=500, failures_last_minute=20)  # 4 %
    assert "retry_storm" not in findings(view(handlers={"x": few, "y": rare}))


# -- memory, store, paused queues, waits ----------------------------------------------


def test_memory_pressure_from_the_system_or_the_process() -> None:
    hot = resources(memory_percent=93.0, children=(ChildSample(11, 90.0, 300 * 2**20),))
    [f] = findings(view(worker_count=8), hot)["memory"]
    assert f.severity == "critical" and "system memory 93 % (threshold 90 %)" in f.evidence
    assert "1 worker processes 300 MB" in f.evidence
    assert f.action == ("set_workers", {"n": 4})
    big = resources(rss=3 * 2**30)
    assert "memory" not in findings(view(), big)
    [g] = findings(view(), big, rss_limit=2**30)["memory"]
    assert "this process 3,072 MB (limit 1,024 MB)" in g.evidence


def test_slow_store() -> None:
    [f] = findings(view(store_latency_p99=0.32), durability="full")["store_latency"]
    assert "320 ms at p99 (threshold 200 ms)" in f.evidence and "fsync" in f.suggestion
    assert "store_latency" not in findings(view(store_latency_p99=0.01))


def test_paused_queue_with_backlog_offers_resume() -> None:
    v = view(
        queues={
            "emails": queue("emails", depth=4000, paused=True, oldest_age=720.0),
            "idle": queue("idle", paused=True),
        }
    )
    [f] = findings(v)["paused_backlog"]
    assert f.severity == "warning" and f.action == ("resume", {"queue": "emails"})
    assert "4,000 tasks waiting; the oldest for 12 min" in f.evidence


def test_tasks_that_wait_far_longer_than_they_run() -> None:
    h = handler("reports", wait_p95=45.0, run_p95=0.5)
    [f] = findings(view(handlers={"reports": h}))["slow_waits"]
    assert "p95 wait 45.0 s vs p95 run 500 ms (90×; threshold 10×)" in f.evidence
    ok = handler("quick", wait_p95=0.8, run_p95=0.01)  # under a second: nobody waits long
    assert "slow_waits" not in findings(view(handlers={"quick": ok}))


def test_findings_come_worst_first_and_thresholds_are_settings() -> None:
    v = view(
        worker_count=4,
        busy_workers=4,
        utilization=0.99,
        depth=100,
        depth_trend=10.0,
        arrival_rate=50,
        done_rate=20,
        mean_run=0.2,
        queues={"q": queue("q", depth=10, paused=True)},
    )
    found = find_bottlenecks(Inputs(v, resources(), 0.0, Settings(), 30, {}))
    assert [f.severity for f in found] == sorted(
        (f.severity for f in found), key=["critical", "warning", "info"].index
    )
    # a stricter saturation threshold silences the saturation rule
    assert "saturated" not in findings(v, saturation_threshold=100.0, idle_threshold=10.0)
