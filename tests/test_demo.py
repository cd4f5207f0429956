"""The demo: each image is one chain that runs end to end, a HEIC image stops its chain,
the load generator enqueues chains, and the report schedule is defined once."""

from __future__ import annotations

import asyncio
import random

from console.demo import DELIVERED, STEPS, DemoPipeline, image_chain, register_demo
from engine import EventKind, TaskState

from .conftest import EngineFactory


async def test_one_image_chain_runs_every_step_with_the_results_passed_on(
    make_engine: EngineFactory,
) -> None:
    random.seed(7)  # resize and upload draw their timings (and upload's 503s) from it
    engine = make_engine(workers=4)
    register_demo(engine)
    async with engine:
        delivered = DELIVERED["images"]
        pipeline = DemoPipeline(engine, seed=1)  # img-00001, a .raw file, priority 5
        flow = await pipeline.submit()
        assert flow.kind == "chain" and [s.handler for s in flow.steps] == list(STEPS)
        assert [s.waiting for s in flow.steps] == [False, True, True, True, True]
        await engine.wait(flow.task_ids[-1], timeout=60)
        done = await engine.workflow(flow.id)
        assert done.state == "succeeded"
        assert [s.state for s in done.steps] == [TaskState.SUCCEEDED] * 5
        tasks = [await engine.get(tid) for tid in done.task_ids]
        assert {t.priority for t in tasks} == {tasks[0].priority}
        assert [t.step for t in tasks] == [0, 1, 2, 3, 4]
        upload, notify = tasks[3], tasks[4]
        assert notify.payload == upload.result  # the object's keys are notify's parameters
        assert set(notify.payload) == {"image_id", "urls"}
        assert notify.result == "sent 3 links for img-00001"
        assert DELIVERED["images"] == delivered + 1


async def test_an_unreadable_image_stops_its_chain(make_engine: EngineFactory) -> None:
    engine = make_engine(workers=2)
    register_demo(engine)
    async with engine:
        flow = await engine.enqueue_workflow(
            image_chain("img-heic", "https://photos.example/img-heic.heic", priority=7)
        )
        download = await engine.wait(flow.task_ids[0], timeout=10)
        assert download.state == TaskState.FAILED and "HEIC is not supported" in (
            download.error or ""
        )
        rest = [await engine.get(tid) for tid in flow.task_ids[1:]]
        assert {t.state for t in rest} == {TaskState.CANCELLED}
        assert "chain stopped: step 1" in (rest[0].timeline[-1].note or "")
        assert (await engine.workflow(flow.id)).state == "failed"


async def test_the_load_generator_enqueues_chains(make_engine: EngineFactory) -> None:
    engine = make_engine(workers=0)
    register_demo(engine)
    async with engine, engine.events(kinds=[EventKind.WORKFLOW_ENQUEUED]) as events:
        pipeline = DemoPipeline(engine, rate=10.0, seed=3)
        pipeline.start()
        try:
            async with asyncio.timeout(10):
                event = await events.get()
        finally:
            await pipeline.stop()
        assert "images.download → images.resize" in (event.message or "")
        flow = await engine.workflow(event.data["workflow_id"])
        assert [s.handler for s in flow.steps] == list(STEPS)
        assert pipeline.submitted >= 1


async def test_register_demo_is_idempotent_and_defines_the_report_schedules(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine(workers=1)
    register_demo(engine)
    register_demo(engine)
    async with engine:
        schedules = await engine.schedules()
        assert sorted((s.name, s.handler, s.queue, s.rule) for s in schedules) == [
            ("images.nightly-report", "images.report", "reports", "cron 0 2 * * * (UTC)"),
            ("images.report", "images.report", "reports", "every 30 s"),
        ]
        task = await engine.wait(await engine.trigger_schedule("images.report"), timeout=10)
        assert task.state == TaskState.SUCCEEDED
        assert set(task.result) == {"images", "links"}
