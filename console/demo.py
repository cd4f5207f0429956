"""Demo handlers and a load generator, so a newcomer sees live work at once.

An image-processing pipeline: download → resize → filter → upload → notify, with
varied run times, I/O-bound steps (async), a blocking step (thread), one
CPU-heavy step on the process executor, and transient failures that retry.
Each step's result feeds the next; :class:`DemoPipeline` enqueues the next step
when one succeeds. Handlers are module-level functions so a worker process can
import the CPU-heavy one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import time
from typing import Any

from engine import Engine, EventKind, RetryPolicy, current_task

log = logging.getLogger(__name__)

STEPS = ("images.download", "images.resize", "images.filter", "images.upload", "images.notify")
SIZES = ((320, 240), (640, 480), (1280, 720))


class UnsupportedImage(ValueError):
    """A permanent failure: retrying cannot help (the policy only retries ConnectionError)."""


async def download(image_id: str, url: str) -> dict[str, Any]:
    """I/O-bound: waits on the network; about one in ten attempts hits a timeout, and
    images the pipeline cannot read fail for good."""
    ctx = current_task()
    if url.endswith(".heic"):
        await asyncio.sleep(0.05)
        raise UnsupportedImage(f"cannot decode {url.rsplit('/', 1)[-1]}: HEIC is not supported")
    rng = random.Random(f"{image_id}:{ctx.attempt}")
    chunks = rng.randint(3, 8)
    for i in range(chunks):
        await asyncio.sleep(rng.uniform(0.05, 0.25))
        ctx.progress((i + 1) / chunks, f"{(i + 1) * 128} KiB of {url.rsplit('/', 1)[-1]}")
    if rng.random() < 0.1:
        raise ConnectionError(f"timed out fetching {url}")
    return {"image_id": image_id, "bytes": chunks * 131072}


def resize(image_id: str, bytes: int) -> dict[str, Any]:
    """Blocking work on a thread: decode and scale (simulated)."""
    ctx = current_task()
    outputs = []
    for i, (w, h) in enumerate(SIZES):
        time.sleep(random.uniform(0.04, 0.15))
        outputs.append(f"{image_id}_{w}x{h}.jpg")
        ctx.progress((i + 1) / len(SIZES), f"{w}×{h}")
    return {"image_id": image_id, "variants": outputs}


def apply_filter(image_id: str, variants: list[str]) -> dict[str, Any]:
    """CPU-heavy, so it runs on the process executor: hashes stand in for pixels."""
    ctx = current_task()
    digest = b""
    rounds = random.randint(20_000, 60_000)
    for i in range(rounds):
        digest = hashlib.sha256(digest + image_id.encode()).digest()
        if i % 10_000 == 0:
            ctx.progress(i / rounds, "sharpen + colour grade")
    return {"image_id": image_id, "variants": variants, "checksum": digest.hex()[:12]}


async def upload(image_id: str, variants: list[str], checksum: str) -> dict[str, Any]:
    """I/O-bound; about one in twenty attempts gets a 503 and retries."""
    ctx = current_task()
    for i, name in enumerate(variants):
        await asyncio.sleep(random.uniform(0.05, 0.3))
        ctx.progress((i + 1) / len(variants), f"uploaded {name}")
    if random.random() < 0.05:
        raise ConnectionError("storage returned 503 Service Unavailable")
    return {"image_id": image_id, "urls": [f"https://cdn.example/{v}" for v in variants]}


async def notify(image_id: str, urls: list[str]) -> str:
    """Fast: tell the customer their images are ready."""
    await asyncio.sleep(random.uniform(0.01, 0.05))
    return f"sent {len(urls)} links for {image_id}"


def register_demo(engine: Engine) -> None:
    """Register the demo handlers on ``engine`` (idempotent per engine)."""
    if "images.download" in engine.registry:
        return
    transient = RetryPolicy.exponential(base=0.5, cap=10, retry_on=(ConnectionError,))
    engine.task(
        name="images.download",
        queue="downloads",
        retries=3,
        retry=transient,
        timeout=10.0,
        soft_timeout=6.0,
    )(download)
    engine.task(name="images.resize", queue="images", executor="thread", timeout=10.0)(resize)
    engine.task(name="images.filter", queue="images", executor="process", timeout=30.0)(
        apply_filter
    )
    engine.task(name="images.upload", queue="uploads", retries=4, retry=transient)(upload)
    engine.task(name="images.notify", queue="notifications", priority="high")(notify)


class DemoPipeline:
    """Feeds the demo: new downloads at a varying rate (with bursts), and the next
    pipeline step whenever one succeeds."""

    def __init__(self, engine: Engine, rate: float = 3.0, seed: int | None = None) -> None:
        self.engine = engine
        self.rate = rate
        self.rng = random.Random(seed)
        self._tasks: list[asyncio.Task[None]] = []
        self.submitted = 0

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._generate()), loop.create_task(self._advance())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _generate(self) -> None:
        tick = 0
        while True:
            tick += 1
            burst = 12 if tick % 40 == 0 else 0  # a burst every ~20 s
            count = burst + (1 if self.rng.random() < self.rate * 0.5 else 0)
            items = []
            for _ in range(count):
                self.submitted += 1
                image = f"img-{self.submitted:05d}"
                ext = "heic" if self.rng.random() < 0.03 else "raw"
                items.append(
                    (
                        "images.download",
                        {"image_id": image, "url": f"https://photos.example/{image}.{ext}"},
                        {"priority": self.rng.choice([2, 5, 5, 5, 7])},
                    )
                )
            if items:
                try:
                    await self.engine.enqueue_many(items)
                except Exception as exc:  # the engine may be stopping
                    log.warning("demo load generator: %s", exc)
            await asyncio.sleep(0.5)

    async def _advance(self) -> None:
        async with self.engine.events(kinds=[EventKind.SUCCEEDED], maxsize=100_000) as events:
            async for event in events:
                if event.handler not in STEPS[:-1] or event.task_id is None:
                    continue
                try:
                    record = await self.engine.get(event.task_id)
                    next_step = STEPS[STEPS.index(event.handler) + 1]
                    payload = dict(record.result)
                    if next_step == "images.notify":
                        payload = {"image_id": payload["image_id"], "urls": payload["urls"]}
                    await self.engine.enqueue(next_step, payload, priority=record.priority)
                except Exception as exc:
                    log.warning("demo pipeline could not advance task %s: %s", event.task_id, exc)
