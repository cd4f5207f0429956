"""The enqueue form (issue 13, item 7, the form's side): it starts from an example of
each parameter's type, never null; a payload nested too deep is refused in the form
(the console does not crash); and whatever the engine refuses at enqueue is shown in
the form, which stays open; it shows the queue the routes setting gives a handler."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from textual.widgets import Button, Select

from console.app import ConsoleApp
from console.demo import register_demo
from console.payload_template import example, template
from console.screens.enqueue import EnqueueScreen, PayloadArea
from engine import Engine

from .console_helpers import settle, started, text_of


def test_examples_follow_the_annotations(db_path: Path) -> None:
    engine = Engine(db_path, workers=0)

    @engine.task(name="x.all")
    def everything(
        name: str,
        count: int,
        ratio: float | None,
        on: bool,
        tags: list[str],
        extra: dict[str, int],
        anything,  # type: ignore[no-untyped-def]
        width: int = 640,
        note: str | None = None,
    ) -> None: ...

    handler = engine.registry.find("x.all")
    assert handler is not None
    assert template(handler) == {
        "name": "",
        "count": 0,
        "ratio": 0.0,
        "on": False,
        "tags": [],
        "extra": {},
        "anything": "",
        "width": 640,
    }
    assert example(int | None) == 0 and example(Any) == ""


async def test_form_prefills_examples_refuses_deep_nesting_and_shows_engine_errors(
    db_path: Path,
) -> None:
    engine = Engine(db_path, workers=0, name="node-1")
    register_demo(engine, schedules=False)
    app = ConsoleApp(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        await pilot.press("e")
        await settle(pilot)
        form = app.screen
        assert isinstance(form, EnqueueScreen)
        area = form.query_one(PayloadArea)
        form.query_one("#handler", Select).value = "images.download"
        await settle(pilot)
        assert json.loads(area.text) == {"image_id": "", "url": ""}  # was both null
        form.query_one("#handler", Select).value = "images.resize"
        await settle(pilot)
        assert json.loads(area.text) == {"image_id": "", "bytes": 0}
        assert "null" not in area.text

        area.load_text('{"image_id": ' + "[" * 5000 + "]" * 5000 + ', "bytes": 1}')
        await settle(pilot)
        assert "nested 5,001 levels deep; at most 200 are allowed" in text_of(
            form.query_one("#payload-error")
        )
        assert form.query_one("#submit", Button).disabled

        refusal = 'images.resize: field "image_id" must be str; got null'

        async def refuse(*args: object, **kwargs: object) -> str:
            raise TypeError(refusal)  # what the engine says of a value of the wrong type

        engine.enqueue = refuse  # type: ignore[method-assign]
        area.load_text('{"image_id": "img-1", "bytes": 3}')
        await settle(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert app.screen is form  # the form stays open, with the engine's reason
        assert refusal in text_of(form.query_one("#payload-error"))


async def test_the_form_shows_the_queue_a_route_gives_a_handler(db_path: Path) -> None:
    engine = Engine(db_path, workers=0, routes={"reports.*": "reports"})
    register_demo(engine, schedules=False)

    @engine.task(name="reports.weekly")
    async def weekly() -> None: ...

    app = ConsoleApp(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        await pilot.press("e")
        await settle(pilot)
        form = app.screen
        assert isinstance(form, EnqueueScreen)
        form.query_one("#handler", Select).value = "reports.weekly"
        await settle(pilot)
        assert "queue reports (route reports.*)" in text_of(form.query_one("#signature"))
        # a handler registered with its own queue keeps it
        form.query_one("#handler", Select).value = "images.resize"
        await settle(pilot)
        assert "queue images ·" in text_of(form.query_one("#signature"))
