"""Issue 13 item 24: ids of 2**63 or more (and other ids no store can hold) are a plain
"no task with id …", the same as a missing task, on SQLite and PostgreSQL, from every
method that takes an id; never an OverflowError."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from engine import Engine, TaskNotFound

from .conftest import FAST

BIG = 2**63

Call = Callable[[Engine, Any], Awaitable[object]]

#: Every public method that takes a task id, and how it is called.
TASK_METHODS: dict[str, Call] = {
    "get": lambda e, i: e.get(i),
    "cancel": lambda e, i: e.cancel(i),
    "reprioritize": lambda e, i: e.reprioritize(i, 3),
    "retry": lambda e, i: e.retry(i),
    "wait": lambda e, i: e.wait(i, timeout=1),
}

#: Methods for which a missing task is an answer (None, 0), not an error.
ANSWERING: dict[str, Call] = {
    "position": lambda e, i: e.position(i),
    "tasks_around": lambda e, i: e.tasks_around(i),
    "purge": lambda e, i: e.purge("succeeded", ids=[i]),
}


async def test_ids_no_store_can_hold_are_missing_ids(store_url: str) -> None:
    engine = Engine(store_url, workers=0, **FAST)

    @engine.task(name="noop")
    async def noop() -> None: ...

    async with engine:
        real = await engine.enqueue("noop")
        missing = str(int(real) + 1000)
        out_of_range = [BIG, str(BIG), 2**64, 10**30, "9" * 5000, str(BIG - 1), missing]
        for value in out_of_range:
            text = str(value) if len(str(value)) <= 40 else str(value)[:37] + "..."
            for name, call in TASK_METHODS.items():
                with pytest.raises(TaskNotFound, match=rf"^no task with id '{text}'$"):
                    print(name, await call(engine, value))  # reached only if it did not raise
            with pytest.raises(LookupError, match=rf"^no workflow with id '{text}'$"):
                await engine.workflow(value)
            for name, call in ANSWERING.items():
                assert await call(engine, value) == await call(engine, missing), name
        malformed = [-1, 0, "-5", True, 1.0, "1e30", "١٢", " 12 ", "", None, "0x10"]
        for value in malformed:
            rule = rf"^no task with id {re_repr(value)}: task ids are positive integers"
            for name, call in {**TASK_METHODS, **ANSWERING}.items():
                with pytest.raises(TaskNotFound, match=rule):
                    print(name, await call(engine, value))
            with pytest.raises(LookupError, match=r"workflow ids are positive integers"):
                await engine.workflow(value)
        for value in (BIG, "abc"):
            with pytest.raises(LookupError, match=r"^no command with id"):
                await engine.command_results(value)
        # the engine is fine, and a real id still works (leading zeros too)
        assert (await engine.get("000" + real)).id == real


def re_repr(value: object) -> str:
    import re

    return re.escape(repr(value))
