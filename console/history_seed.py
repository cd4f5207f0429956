"""A day of made-up history for the demo's handlers, so the Trends screen of
``taskdeck screenshot`` has something to show: a daily wave of traffic, a failure
spike in the afternoon and waits that grow at the peak. Written through a second
engine on the same store whose clock walks through the past day."""

from __future__ import annotations

import math
import random
from pathlib import Path

from engine import Engine

#: demo handler -> (queue, tasks a minute at the peak, typical run time in seconds)
HANDLERS = {
    "images.download": ("downloads", 30, 0.8),
    "images.resize": ("images", 30, 0.3),
    "images.filter": ("images", 30, 1.2),
    "images.upload": ("uploads", 28, 0.5),
    "images.notify": ("notifications", 28, 0.02),
}


async def seed_history(store: Path, now: float, hours: int = 25) -> None:
    """Record ``hours`` hours of minutes ending at ``now`` into the store at ``store``."""
    rng = random.Random(7)
    at = [now - hours * 3600]
    engine = Engine(store, workers=0, clock=lambda: at[0])
    await engine.start()
    try:
        recorder = engine.history.recorder
        for minute in range(hours * 60):
            at[0] = (now - hours * 3600) // 60 * 60 + minute * 60 + 1
            hour = (at[0] % 86400) / 3600
            wave = 0.55 + 0.45 * math.sin((hour - 9) / 24 * 2 * math.pi)
            for handler, (queue, peak, run) in HANDLERS.items():
                for _ in range(max(1, int(peak * wave * rng.uniform(0.8, 1.2)))):
                    failing = handler == "images.upload" and 14 <= hour < 15
                    outcome = "retry" if failing and rng.random() < 0.3 else "succeeded"
                    if rng.random() < (0.12 if failing else 0.005):
                        outcome = "failed"
                    recorder.started(handler, queue, rng.expovariate(1 / (0.2 + 4 * wave**4)))
                    took = rng.expovariate(1 / (run * (0.6 + 0.8 * wave)))
                    recorder.finished(handler, queue, took, outcome, False)
                recorder.backlog(queue, int(400 * max(0.0, wave - 0.6) * rng.uniform(0.7, 1)))
            if minute % 60 == 59:
                await engine.history.flush()
        at[0] = now
        await engine.history.flush()
        await engine.history.maintain()
    finally:
        await engine.stop(grace=0)
