"""Issue 13 items 12 and 25: payloads too deep or not Unicode are refused with one clear
line (the nesting limit, the byte offset, the JSON path), never a RecursionError, and a
result or workflow step too deep fails its task without stopping the engine."""

from __future__ import annotations

import os
from typing import Any

import pytest

from engine import (
    MAX_JSON_DEPTH,
    Engine,
    PayloadError,
    TaskHandle,
    TaskState,
    chain,
    current_task,
    parse_payload,
)

from .conftest import EngineFactory


def nested(levels: int) -> dict[str, Any]:
    """``{"a": {"a": … {}}}``: ``levels`` objects deep, built without recursion."""
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b'{"name": "caf\xff"}', r"^the payload is not valid UTF-8: byte 13 \(0xff\) cannot start"),
        (b'{"n": "\xc3"}', r"^the payload is not valid UTF-8: byte 7 \(0xc3\) starts a character"),
        # what Python makes of the bytes {"a": "x\xffy"} in argv (surrogateescape)
        (os.fsdecode(b'{"a": "x\xffy"}'), r"^the payload is not valid UTF-8: byte 8 \(0xff\)"),
        ('{"a": "\ud800"}', r"^the payload is not valid Unicode: a lone surrogate U\+D800 at char"),
        ('{"a": "\\udcff"}', r"^the payload has the lone surrogate U\+DCFF at \$\.a: strings must"),
        ("{'a': 1}", r"^the payload is not valid JSON: line 1, column 2: Expecting property name"),
        ('{"a": NaN}', r"^the payload is not valid JSON: NaN is not a JSON number"),
        ('{"a": 1e999}', r"^the payload has inf at \$\.a; JSON allows only finite numbers"),
        ('{"a": ' + "9" * 5000 + "}", r"a number has 5,000 digits; at most 4,300 are allowed"),
        ('{"a": -' + "9" * 4301 + "}", r"a number has 4,301 digits; at most 4,300 are allowed"),
        ("[" * 5000 + "]" * 5000, r"^the payload is nested 5,000 levels deep; at most 200 are"),
        ('{"a":' * 5000 + "1" + "}" * 5000, r"^the payload is nested 5,000 levels deep"),
        ("[" * 100_000, r"^the payload is nested 100,000 levels deep"),
        ("[1, 2]", r'^the payload must be a JSON object \(\{"name": value, …\}\); got an array$'),
        ('"x"', r"must be a JSON object .*; got a string$"),
        ("null", r"must be a JSON object .*; got null$"),
        ("12", r"must be a JSON object .*; got a number$"),
    ],
)
def test_parse_payload_refuses_with_one_clear_line(text: str | bytes, message: str) -> None:
    with pytest.raises(PayloadError, match=message) as info:
        parse_payload(text)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)


def test_parse_payload_accepts_objects_up_to_the_limit() -> None:
    assert MAX_JSON_DEPTH == 200
    deepest = '{"a":' * (MAX_JSON_DEPTH - 1) + "[]" + "}" * (MAX_JSON_DEPTH - 1)
    assert parse_payload(deepest)["a"]["a"]["a"] is not None
    assert parse_payload(deepest.encode()) == parse_payload(deepest)
    # brackets and escaped quotes inside strings are text, not nesting
    assert parse_payload('{"s": "[[[{{\\"]]"}') == {"s": '[[[{{"]]'}
    assert parse_payload('{"name": "café 🦄"}'.encode()) == {"name": "café 🦄"}
    assert parse_payload("  ") == {}
    assert parse_payload('{"n": -' + "9" * 4300 + "}")["n"] == -(10**4300 - 1)
    with pytest.raises(PayloadError, match="nested 201 levels deep"):
        parse_payload("[" + deepest + "]")
    with pytest.raises(PayloadError, match=r"^--payload is not valid JSON"):
        parse_payload("{", what="--payload")


def register(engine: Engine) -> dict[str, TaskHandle]:
    @engine.task(name="echo")
    async def echo(**values: Any) -> dict[str, Any]:
        return values

    @engine.task(name="deep.result")
    async def deep_result(levels: int) -> dict[str, Any]:
        return nested(levels)

    @engine.task(name="surrogate.result")
    async def surrogate_result() -> list[str]:
        return ["ok", "bad \udcff"]

    @engine.task(name="bad.progress")
    async def bad_progress() -> str:
        current_task().progress(0.5, "half \udcff")
        return "never"

    @engine.task(name="take")
    async def take(previous: Any) -> str:
        return "took it"

    return {"echo": echo, "deep": deep_result, "take": take}


async def test_the_api_refuses_deep_and_non_unicode_payloads(make_engine: EngineFactory) -> None:
    engine = make_engine(workers=2)
    handle = register(engine)
    async with engine:
        refused = [
            (
                engine.enqueue("echo", {"x": nested(5000)}),
                r"nested deeper than 200 levels at \$\.x",
            ),
            (engine.enqueue("echo", {"items": ["a", "b", "\udcff"]}), r"U\+DCFF at \$\.items\[2\]"),
            (engine.enqueue("echo", {"\ud800": 1}), r"U\+D800 in the key at \$\["),
            (engine.enqueue("echo", {"n": [-(10**4300)]}), r"more than 4,300 digits at \$\.n\[0\]"),
            (
                engine.enqueue_many([("echo", {}), ("echo", {"x": nested(5000)})]),
                r"^item 1: payload is nested deeper than 200 levels",
            ),
            (
                engine.enqueue_workflow(
                    chain(handle["echo"].s(x=nested(5000)), handle["take"].s())
                ),
                r"^chain step 1 \(echo\): payload is nested deeper than 200 levels",
            ),
        ]
        for call, message in refused:
            with pytest.raises(PayloadError, match=message):
                await call
        assert (await engine.tasks()).total == 0  # nothing was written

        # a result too deep or not Unicode fails its task for good, with the reason
        deep = await engine.enqueue("deep.result", {"levels": 5000})
        bad_text = await engine.enqueue("surrogate.result")
        record = await engine.wait(deep, timeout=10)
        assert record.state is TaskState.FAILED and record.attempts == 1
        assert "result is nested deeper than 200 levels" in (record.error or "")
        record = await engine.wait(bad_text, timeout=10)
        assert record.state is TaskState.FAILED
        assert "lone surrogate U+DCFF at $[1]" in (record.error or "")

        # a progress message that is not Unicode fails its attempt (before, it was saved
        # with the completion and blocked every completion after it)
        record = await engine.wait(await engine.enqueue("bad.progress"), timeout=10)
        assert record.state is TaskState.FAILED
        assert "progress message must be valid Unicode text; it has the lone surrogate U+DCFF" in (
            record.error or ""
        )

        # a result at the limit moves on to the next step of a chain (one level deeper)
        flow = await engine.enqueue_workflow(
            chain(handle["deep"].s(levels=MAX_JSON_DEPTH), handle["take"].s())
        )
        last = await engine.wait(flow.steps[-1].task_id, timeout=10)
        assert (last.state, last.result) == (TaskState.SUCCEEDED, "took it")
        # and the engine still runs everything else
        ok = await engine.enqueue("echo", {"x": nested(MAX_JSON_DEPTH - 1)})
        assert (await engine.wait(ok, timeout=10)).state is TaskState.SUCCEEDED
