"""The stuck finding: a task running far past its handler's p95 on one line."""

from __future__ import annotations

from engine import Finding
from engine.stacks import StackFrame, StackTrace
from engine.stuck import Running, StuckWatch
from tests import stack_handlers
from tests.conftest import EngineFactory, until
from tests.stack_handlers import line_of


def stuck_finding(findings: tuple[Finding, ...]) -> Finding | None:
    return next((f for f in findings if f.rule == "stuck"), None)


async def test_a_task_hanging_on_one_line_is_found_stuck(make_engine: EngineFactory) -> None:
    # Given a handler whose five runs took a few milliseconds each
    engine = make_engine(workers=2, stuck_factor=5, stuck_samples=2)
    engine.task(name="flaky.fetch")(stack_handlers.maybe_stuck)
    async with engine:
        for _ in range(5):
            await engine.wait(await engine.enqueue("flaky.fetch", {}), timeout=5)
        # When one of its tasks hangs on one line
        task_id = await engine.enqueue("flaky.fetch", {"stick": True})
        await until(lambda: stuck_finding(engine.snapshot().findings) is not None, 10)
        # Then a finding names the task, the handler, the line and how long
        found = stuck_finding(engine.snapshot().findings)
        assert found is not None
        assert found.title == f"Task {task_id} looks stuck in flaky.fetch"
        where = f"tests/stack_handlers.py:{line_of('STUCK HERE')}"
        assert f"at {where} in maybe_stuck" in found.evidence
        assert "running " in found.evidence and "stuck_factor 5" in found.evidence
        assert f"taskdeck stack {task_id}" in found.suggestion
        await engine.cancel(task_id)


def trace_at(line: int) -> StackTrace:
    frame = StackFrame("app.py", line, "fetch", "sock.recv()")
    return StackTrace(1, "n", "async", "fetch", (frame,), 0.0)


async def test_a_task_that_moves_on_is_not_stuck() -> None:
    lines = iter([10, 11, 12, 12, 12])

    async def stack(task_id: int) -> StackTrace:
        return trace_at(next(lines))

    watch = StuckWatch(stack)
    p95 = {"fetch": (0.1, 50)}
    task = [Running(1, "fetch", 5.0)]
    found = [await watch.sample(task, p95, 5, 3, float(t)) for t in range(5)]
    # three different lines, then three samples on line 12: stuck at the fifth
    assert [len(f) for f in found] == [0, 0, 0, 0, 1]
    assert (found[-1][0].where, found[-1][0].samples, found[-1][0].on_line) == ("app.py:12", 3, 2.0)
    # under the threshold (or too few runs to trust the p95) it is not even looked at
    taken = watch.samples_taken
    assert await watch.sample([Running(1, "fetch", 0.4)], p95, 5, 3, 6.0) == ()
    assert await watch.sample(task, {"fetch": (0.1, 4)}, 5, 3, 7.0) == ()
    assert watch.samples_taken == taken
