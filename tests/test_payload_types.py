"""Issue 13 item 7 (engine side): payload values are checked against the handler's
simple annotations at enqueue, every mismatch named at once, before anything is
written; a handler without annotations still takes anything."""

from __future__ import annotations  # the handlers below have string annotations

from typing import Annotated, Any, Literal, Optional

import pytest

from console.demo import image_chain, register_demo
from engine import Engine, Signature, TaskState, chain

from .conftest import EngineFactory


def register(engine: Engine) -> None:
    register_demo(engine, schedules=False)

    @engine.task(name="plain")
    async def plain(a, b=None, **rest):  # type: ignore[no-untyped-def]
        return [a, b, rest]

    @engine.task(name="typed")
    async def typed(
        ratio: float,
        flag: bool,
        count: Optional[int],  # noqa: UP045 (Optional is one of the forms handlers use)
        sizes: list[int],
        labels: dict[str, str | None],
        unknown: NotImportable,  # type: ignore[name-defined]  # noqa: F821
        mode: Literal["a", "b"] = "a",
        key: int | str = 0,
        note: str = None,  # type: ignore[assignment]  # noqa: RUF013 (None default: null ok)
        extra: Any = None,
        level: Annotated[int, "0-9"] = 0,
    ) -> str:
        return "ok"


async def refused(engine: Engine, handler: str, payload: dict[str, Any]) -> str:
    with pytest.raises(TypeError) as info:
        await engine.enqueue(handler, payload)
    return str(info.value)


async def test_payload_values_must_fit_the_handlers_annotations(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine(workers=0)
    register(engine)
    async with engine:
        # what the console's enqueue form used to pre-fill for the demo's first step
        assert await refused(engine, "images.download", {"image_id": None, "url": None}) == (
            'images.download: field "image_id" must be str; got null; '
            'field "url" must be str; got null'
        )
        assert await refused(engine, "images.resize", {"image_id": "a", "bytes": True}) == (
            'images.resize: field "bytes" must be int; got true'
        )
        assert await refused(engine, "images.resize", {"image_id": "a", "bytes": 2.5}) == (
            'images.resize: field "bytes" must be int; got a decimal number'
        )
        assert await refused(engine, "images.filter", {"image_id": 7, "variants": ["a", 2]}) == (
            'images.filter: field "image_id" must be str; got a number; '
            'field "variants" must be list[str]; got a number at variants[1]'
        )
        bad = {
            "ratio": "1",
            "flag": 1,
            "count": 1.5,
            "sizes": [1, "2"],
            "labels": {"x": 3},
            "unknown": [None],  # its annotation cannot be resolved: not checked
            "mode": "z",
            "key": [],
            "level": "high",
        }
        assert await refused(engine, "typed", bad) == (
            'typed: field "ratio" must be float; got a string; '
            'field "flag" must be bool; got a number; '
            'field "count" must be int | None; got a decimal number; '
            'field "sizes" must be list[int]; got a string at sizes[1]; '
            'field "labels" must be dict[str, str | None]; got a number at labels["x"]; '
            'field "key" must be int | str; got an array; '
            'field "level" must be int; got a string'
        )
        assert len(await engine.tasks()) == 0  # nothing was written

        # the right types (an int for a float, null where None is allowed) are accepted
        good = [
            ("images.download", {"image_id": "a", "url": "https://example.com/a.png"}),
            ("images.resize", {"image_id": "a", "bytes": 3}),
            ("images.filter", {"image_id": "a", "variants": ["320x240"]}),
            (
                "typed",
                {
                    "ratio": 1,
                    "flag": False,
                    "count": None,
                    "sizes": [],
                    "labels": {"x": None, "y": "z"},
                    "unknown": {"any": "thing"},
                    "mode": "z",  # Literal is not checked: accepted
                    "key": "k",
                    "note": None,
                    "extra": [1, {"2": 3}],
                },
            ),
            ("plain", {"a": None, "b": [1], "c": {"d": True}}),  # no annotations: anything
        ]
        for handler, payload in good:
            await engine.enqueue(handler, payload)

        # enqueue_many and workflows check each step's own arguments, naming the step
        with pytest.raises(TypeError, match=r'^item 1: images.resize: field "bytes" must be int'):
            await engine.enqueue_many(
                [
                    ("images.resize", {"image_id": "a", "bytes": 1}),
                    ("images.resize", {"bytes": "1", "image_id": "a"}),
                ]
            )
        with pytest.raises(
            TypeError,
            match=r'^chain step 2 \(images.notify\): images.notify: field "image_id" must be str',
        ):
            await engine.enqueue_workflow(
                chain(
                    Signature("images.download", {"image_id": "a", "url": "u"}),
                    Signature("images.notify", {"image_id": 5}),
                )
            )
        await engine.enqueue_workflow(image_chain("a", "https://example.com/a.png"))
        # the batch: all or nothing (rows read, not the counts, which follow a moment later)
        assert len(await engine.tasks(limit=100)) == len(good) + 5


async def test_a_previous_steps_result_is_not_type_checked_at_run_time(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine(workers=2)

    @engine.task(name="count")
    async def count() -> int:
        return 3

    @engine.task(name="show")
    async def show(label: str) -> str:
        return f"got {label!r}"

    async with engine:
        flow = await engine.enqueue_workflow(chain(count.s(), show.s()))
        record = await engine.wait(flow.steps[-1].task_id, timeout=10)
        assert (record.state, record.result) == (TaskState.SUCCEEDED, "got 3")
