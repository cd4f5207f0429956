"""Demo handlers and a load generator, so a newcomer sees live work at once.

An image-processing pipeline: download → resize → filter → upload → notify, with
varied run times, I/O-bound steps (async), a blocking step (thread), one
CPU-heavy step on the process executor, and transient failures that retry.
Each image is one chain (:func:`image_chain`): the engine passes each step's
result on to the next (an object result's keys fill the next step's open
parameters), and a step that fails for good stops the rest. A periodic task,
``images.report``, sums up every 30 s what was delivered (and once more at 02:00
UTC, as the schedule ``images.nightly-report``). Handlers are module-level
functions so a worker process can import the CPU-heavy one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import time
from typing import Any

from engine import Chain, Engine, RetryPolicy, Signature, WorkflowRecord, chain, current_task

log = logging.getLogger(__name__)

STEPS = ("images.download", "images.resize", "images.filter", "images.upload", "images.notify")
SIZES = ((320, 240), (640, 480), (1280, 720))
REPORT_EVERY = 30
#: How often the load generator submits (``rate`` images per second on average).
TICK = 0.5
#: What this process has delivered (images.notify counts, images.report reads).
DELIVERED = {"images": 0, "links": 0}


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
    ctx.log(f"fetching {url} in {chunks} chunks")
    for i in range(chunks):
        await asyncio.sleep(rng.uniform(0.05, 0.25))
        ctx.progress((i + 1) / chunks, f"{(i + 1) * 128} KiB of {url.rsplit('/', 1)[-1]}")
    if rng.random() < 0.1:
        ctx.log(f"no answer from {url.split('/')[2]} after {chunks} chunks", level="warning")
        raise ConnectionError(f"timed out fetching {url}")
    return {"image_id": image_id, "bytes": chunks * 131072}


def resize(image_id: str, bytes: int) -> dict[str, Any]:
    """Blocking work on a thread: decode and scale (simulated)."""
    ctx = current_task()
    outputs = []
    for i, (w, h) in enumerate(SIZES):
        time.sleep(random.uniform(0.04, 0.15))
        outputs.append(f"{image_id}_{w}x{h}.jpg")
        log.info("%s: %s bytes scaled to %d×%d", image_id, f"{bytes:,}", w, h)
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
    DELIVERED["images"] += 1
    DELIVERED["links"] += len(urls)
    return f"sent {len(urls)} links for {image_id}"


async def report() -> dict[str, int]:
    """Periodic and fast: how many images (and links) were delivered so far."""
    return dict(DELIVERED)


def image_chain(image_id: str, url: str, priority: int = 5) -> Chain:
    """One image through every step, each at ``priority``: download(image_id, url)
    returns {image_id, bytes} for resize, which returns {image_id, variants} for
    filter, then {image_id, variants, checksum} for upload, {image_id, urls} for notify."""
    first = Signature(STEPS[0], {"image_id": image_id, "url": url})
    steps = (first, *(Signature(name) for name in STEPS[1:]))
    return chain(*(step.set(priority=priority) for step in steps))


def register_demo(engine: Engine, schedules: bool = True) -> None:
    """Register the demo handlers and (unless ``schedules=False``: a command-line
    client must not write the demo's schedules into a store) the report's two
    schedules on ``engine`` (idempotent per engine)."""
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
    if not schedules:
        engine.task(name="images.report", queue="reports")(report)
        return
    handle = engine.periodic(every=REPORT_EVERY, name="images.report", queue="reports")(report)
    engine.periodic(cron="0 2 * * *", tz="UTC", schedule_name="images.nightly-report")(handle)


class DemoPipeline:
    """Feeds the demo: one chain per new image, at a varying rate (with bursts)."""

    def __init__(self, engine: Engine, rate: float = 3.0, seed: int | None = None) -> None:
        self.engine = engine
        self.rate = rate
        self.rng = random.Random(seed)
        self._tasks: list[asyncio.Task[None]] = []
        self.submitted = 0

    def start(self) -> None:
        self._tasks = [asyncio.get_running_loop().create_task(self._generate())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def submit(self) -> WorkflowRecord:
        """Enqueue the chain of the next image (about 3 % are HEIC files that fail)."""
        self.submitted += 1
        image = f"img-{self.submitted:05d}"
        ext = "heic" if self.rng.random() < 0.03 else "raw"
        priority = self.rng.choice([2, 5, 5, 5, 7])
        url = f"https://photos.example/{image}.{ext}"
        return await self.engine.enqueue_workflow(image_chain(image, url, priority))

    async def _generate(self) -> None:
        tick = 0
        while True:
            tick += 1
            burst = 12 if tick % 40 == 0 else 0  # a burst every ~20 s
            expected = self.rate * TICK  # images per tick, on average
            whole = int(expected)
            count = burst + whole + (1 if self.rng.random() < expected - whole else 0)
            try:
                for _ in range(count):
                    await self.submit()
            except Exception as exc:  # the engine may be stopping
                log.warning("demo load generator: %s", exc)
            await asyncio.sleep(TICK)
