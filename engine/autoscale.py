"""The autoscaler: a worker count from the load, with the reason for every decision.

Need (Little's law): ``(arrivals/s + backlog ÷ cooldown) × mean run ÷ target
utilization`` — enough workers to keep up with arrivals (over the last 5 s, to
follow bursts) at the target utilization, plus enough to clear the current
backlog before the next change can come. The target is that need clamped to
``min_workers … max_workers``.

Guards, in order: no change during ``cooldown`` after the last one; never scale up
while system CPU or memory is over its threshold — shed a quarter of the workers
instead; a dead band against noise (so a steady load does not thrash): scale up
only when the need is over 15 % above the current count or the backlog is
growing, and down only when it stays at least 20 % below for two decisions.
``decide`` is pure apart from the state kept on the object, so tests can script
load and resources step by step.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from engine.metrics import MetricsView
from engine.resources import ResourceSample
from engine.settings import Settings

DOWN_BAND = 0.8  # scale down only when the need is below 80 % of the current count
DOWN_STREAK = 2  # … for this many decisions in a row
UP_BAND = 1.15  # scale up when the need is 15 % above the count, or the backlog grows


class LoadLevel(enum.StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class ScaleDecision:
    """One autoscaler decision. ``target`` equals ``current`` when nothing changes."""

    at: float
    level: LoadLevel
    current: int
    need: int
    target: int
    reason: str

    @property
    def changed(self) -> bool:
        return self.target != self.current


def load_level(view: MetricsView, settings: Settings) -> LoadLevel:
    busy = view.utilization * 100
    if view.backlog_growing and busy >= settings.saturation_threshold:
        return LoadLevel.CRITICAL
    if busy >= settings.target_utilization or view.depth > 0:
        return LoadLevel.HIGH
    if busy >= settings.idle_threshold:
        return LoadLevel.MEDIUM
    return LoadLevel.LOW


def compute_need(view: MetricsView, settings: Settings) -> int | None:
    """Workers the load needs, or None when there is nothing to base it on yet."""
    mean_run = view.mean_run
    if mean_run is None:
        return None if view.depth == 0 else max(1, view.worker_count * 2)
    horizon = max(settings.cooldown, settings.scale_interval)
    arrivals = view.arrival_recent + view.depth / horizon
    return math.ceil(arrivals * mean_run / (settings.target_utilization / 100.0))


class Autoscaler:
    """Decides a worker count every ``scale_interval``; keeps what hysteresis needs."""

    def __init__(self) -> None:
        self.last: ScaleDecision | None = None
        self.last_change_at: float | None = None
        self._low_streak = 0

    def note_change(self, at: float) -> None:
        """Someone (an operator, or this autoscaler) just changed the worker count."""
        self.last_change_at = at

    def decide(
        self, view: MetricsView, resources: ResourceSample | None, settings: Settings, now: float
    ) -> ScaleDecision:
        current = view.worker_count
        level = load_level(view, settings)
        raw = compute_need(view, settings)
        need = current if raw is None else raw
        low, high = settings.min_workers, settings.max_workers
        target = min(high, max(low, need))

        def decision(final: int, reason: str) -> ScaleDecision:
            self.last = ScaleDecision(now, level, current, need, final, reason)
            if final != current:
                self.last_change_at = now
                self._low_streak = 0
            return self.last

        if current < low or current > high:
            bound = low if current < low else high
            return decision(
                bound, f"outside min_workers…max_workers ({low}…{high}); set to {bound}"
            )
        pressure = _pressure(resources, settings)
        cooling = self.last_change_at is not None and now - self.last_change_at < settings.cooldown
        if pressure is not None:
            shed = max(low, current - max(1, current // 4))
            why = (
                f"wanted to scale up to {target}, held back by {pressure}"
                if target > current
                else pressure
            )
            if cooling or shed == current:
                return decision(current, f"{why}; holding at {current}")
            return decision(shed, f"{why}; shedding workers {current} → {shed}")
        basis = _basis(view, settings, need)
        if target > current and (target > current * UP_BAND or view.backlog_growing):
            self._low_streak = 0
            if cooling:
                left = settings.cooldown - (now - (self.last_change_at or now))
                return decision(
                    current, f"wanted {target} ({basis}); cooling down, {left:.0f} s left"
                )
            return decision(target, f"scaling up {current} → {target}: {basis}")
        if target < current * DOWN_BAND:
            self._low_streak += 1
            if self._low_streak < DOWN_STREAK:
                return decision(current, f"need {target} ({basis}); waiting to be sure")
            if cooling:
                return decision(current, f"need {target} ({basis}); cooling down")
            return decision(target, f"scaling down {current} → {target}: {basis}")
        self._low_streak = 0
        return decision(current, f"steady at {current}: {basis}")


def _pressure(resources: ResourceSample | None, settings: Settings) -> str | None:
    if resources is None:
        return None
    if resources.system_cpu >= settings.cpu_threshold:
        return f"CPU {resources.system_cpu:.0f} % > {settings.cpu_threshold:g} %"
    if resources.memory_percent >= settings.memory_threshold:
        return f"memory {resources.memory_percent:.0f} % > {settings.memory_threshold:g} %"
    return None


def _basis(view: MetricsView, settings: Settings, need: int) -> str:
    mean = f"{view.mean_run:.3g} s" if view.mean_run is not None else "unknown"
    return (
        f"need {need} = ({view.arrival_recent:.3g}/s + backlog {view.depth:,} ÷ "
        f"{max(settings.cooldown, settings.scale_interval):g} s) × {mean} ÷ "
        f"{settings.target_utilization:g} %"
    )
