"""The autoscaler under scripted load: a deterministic little simulation feeds it one
view per decision; resources are scripted too (a CPU spike is just a number)."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from itertools import pairwise

from engine import Settings
from engine.autoscale import Autoscaler, LoadLevel, ScaleDecision
from engine.metrics import MetricsView
from engine.resources import ResourceSample

RUN = 0.2  # seconds each task takes
INTERVAL = 2.0  # seconds between decisions (scale_interval)


def sample(cpu: float = 30.0, memory: float = 40.0) -> ResourceSample:
    return ResourceSample(0.0, cpu, cpu, (cpu, cpu), 100 * 2**20, memory)


class Simulation:
    """A pool of ``workers`` serving ``arrivals(t)`` tasks/s of RUN seconds each."""

    def __init__(self, settings: Settings, workers: int = 4) -> None:
        self.settings = settings
        self.workers = workers
        self.depth = 0.0
        self.now = 0.0
        self.scaler = Autoscaler()
        self.decisions: list[ScaleDecision] = []

    def step(self, arrivals: float, cpu: float = 30.0, memory: float = 40.0) -> ScaleDecision:
        capacity = self.workers / RUN
        served = min(capacity, arrivals + self.depth / INTERVAL)
        before = self.depth
        self.depth = max(0.0, self.depth + (arrivals - served) * INTERVAL)
        view = MetricsView(
            at=self.now,
            worker_count=self.workers,
            busy_workers=round(served * RUN),
            utilization=min(1.0, served * RUN / self.workers),
            arrival_rate=arrivals,
            arrival_recent=arrivals,
            done_rate=served,
            depth=round(self.depth),
            depth_trend=(self.depth - before) / INTERVAL,
            handlers={},
            queues={},
            series={},
            store_latency_p99=None,
            mean_run=RUN,
        )
        decision = self.scaler.decide(view, sample(cpu, memory), self.settings, self.now)
        self.workers = decision.target
        self.decisions.append(decision)
        self.now += INTERVAL
        return decision

    def run(self, arrivals: Callable[[int], float], steps: int, **resources: float) -> None:
        for i in range(steps):
            self.step(arrivals(i), **resources)

    def changes(self) -> list[ScaleDecision]:
        return [d for d in self.decisions if d.changed]


def settings(**changes: object) -> Settings:
    base: dict[str, object] = {
        "autoscale": True,
        "min_workers": 2,
        "max_workers": 64,
        "target_utilization": 80.0,
        "scale_interval": INTERVAL,
        "cooldown": 6.0,
    }
    return Settings(**{**base, **changes})


def test_step_up_converges_within_two_decisions() -> None:
    sim = Simulation(settings(), workers=4)
    sim.run(lambda i: 10.0, 5)  # 10/s × 0.2 s ÷ 0.8 → 3 workers is plenty
    assert sim.workers <= 4
    sim.run(lambda i: 100.0, 2)  # a step to 100/s: need 25 (plus the backlog)
    assert sim.workers >= 25, [d.reason for d in sim.decisions[-2:]]
    sim.run(lambda i: 100.0, 6)  # the backlog drains, and it settles
    assert 25 <= sim.workers <= 32
    assert sim.depth == 0
    assert any(d.reason.startswith("scaling up 3 → 33") for d in sim.changes())


def test_step_down_waits_for_two_low_decisions_and_the_cooldown() -> None:
    sim = Simulation(settings(), workers=30)
    sim.run(lambda i: 100.0, 4)
    before = sim.workers
    first = sim.step(10.0)
    assert not first.changed and "waiting to be sure" in first.reason
    sim.run(lambda i: 10.0, 3)
    assert sim.workers == 3 and sim.workers < before  # 10/s × 0.2 ÷ 0.8 = 2.5 → 3
    assert "scaling down" in sim.changes()[-1].reason


def test_never_outside_min_and_max() -> None:
    busy = Simulation(settings(min_workers=2, max_workers=16), workers=8)
    busy.run(lambda i: 10_000.0, 10)
    assert max(d.target for d in busy.decisions) == 16
    idle = Simulation(settings(min_workers=2, max_workers=16), workers=8)
    idle.run(lambda i: 0.0, 20)
    assert min(d.target for d in idle.decisions) == 2
    assert all(2 <= d.target <= 16 for d in busy.decisions + idle.decisions)


def test_cpu_pressure_holds_back_and_sheds() -> None:
    sim = Simulation(settings(), workers=8)
    d = sim.step(200.0, cpu=93.0)
    assert d.target == 6  # a quarter shed, not the 50 the load asks for
    assert "wanted to scale up to" in d.reason and "held back by CPU 93 % > 85 %" in d.reason
    d = sim.step(200.0, cpu=93.0)
    assert d.target == 6 and "holding at 6" in d.reason  # cooling down: no second change yet
    sim.run(lambda i: 200.0, 4, cpu=30.0)  # the spike is over
    assert sim.workers >= 50
    memory = Simulation(settings(), workers=8).step(200.0, memory=95.0)
    assert "memory 95 % > 90 %" in memory.reason and memory.target == 6


def test_steady_noisy_load_does_not_oscillate() -> None:
    rng = random.Random(5)
    sim = Simulation(settings(), workers=4)
    sim.run(lambda i: 60.0, 6)  # reach the level first
    settled = len(sim.changes())
    sim.run(lambda i: 60.0 * rng.uniform(0.9, 1.1), 100)  # ±10 % noise for 200 s
    later = sim.changes()[settled:]
    assert len(later) <= 1, [d.reason for d in later]
    # and never two changes closer than the cooldown
    times = [d.at for d in sim.changes()]
    assert all(b - a >= 6.0 for a, b in pairwise(times))


def test_load_levels() -> None:
    sim = Simulation(settings(), workers=4)
    assert sim.step(1.0).level == LoadLevel.LOW
    assert sim.step(12.0).level == LoadLevel.MEDIUM
    assert sim.step(500.0).level == LoadLevel.CRITICAL


def test_nothing_to_go_on_keeps_the_count() -> None:
    view = MetricsView(0.0, 5, 0, 0.0, 0.0, 0.0, 0, 0.0, {}, {}, {}, None, None)
    decision = Autoscaler().decide(view, None, settings(), 0.0)
    assert decision.target == 5 and not decision.changed
    assert dataclasses.replace(view, depth=10).depth == 10
