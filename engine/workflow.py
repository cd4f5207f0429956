"""Workflows: chains (each step gets the previous result) and groups (parallel
members, then an optional callback with every member's result).

``chain(download.s(url=u), resize.s(width=8), upload.s())`` and
``group(a.s(x=1), a.s(x=2), callback=total.s())`` describe the work; the engine
checks every step when it is enqueued and stores all steps in one transaction.
Later steps wait as ``scheduled`` tasks; the store releases each when the step
before it succeeds (see :mod:`engine.store.sqlite.followups`), so a workflow
survives a crash like any task.

How a step takes the previous result: as the one parameter its own arguments
leave open (``resize(image, width)`` with ``resize.s(width=8)`` gets it as
``image``); when several required parameters are open, an object result's keys
fill them (``notify(image_id, urls)`` after a step returning both). A group's
callback gets the list of member results, in member order, in its one open
parameter.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.model import WorkflowKind, WorkflowRecord, WorkflowStep
from engine.registry import Handler, payload_object
from engine.settings import suggest

STEP_OPTIONS = ("priority", "queue")


class WorkflowEngine(Protocol):
    """What a workflow needs of an engine: somewhere to enqueue itself."""

    async def enqueue_workflow(self, flow: Chain | Group, /) -> WorkflowRecord: ...


@dataclass(frozen=True)
class Signature:
    """One step: a handler name, its own arguments, and options (priority, queue).

    Made with ``handle.s(**arguments)`` on a registered handler, or directly by
    name: ``Signature("images.resize", {"width": 8})``.
    """

    handler: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    engine: WorkflowEngine | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.handler, str):
            raise TypeError(f"a step names its handler as a str; got {type(self.handler).__name__}")
        unknown = [k for k in self.options if k not in STEP_OPTIONS]
        if unknown:
            names = ", ".join(f"{k!r}{suggest(k, STEP_OPTIONS)}" for k in unknown)
            raise TypeError(
                f"unknown step option {names}; a workflow step takes {', '.join(STEP_OPTIONS)} "
                "(unique_key, webhook, delay and run_at apply to single tasks only)"
            )

    def set(self, **options: Any) -> Signature:
        """A copy with options changed, e.g. ``resize.s(width=8).set(priority=9)``."""
        return Signature(self.handler, self.payload, {**self.options, **options}, self.engine)


StepLike = Signature | tuple[Any, ...] | str


def signature(step: object, where: str = "step") -> Signature:
    """A :class:`Signature` from a signature, a ``(name, payload[, options])`` tuple,
    a handler name, or a registered handler (``TaskHandle``) with no arguments."""
    if isinstance(step, Signature):
        return step
    if isinstance(step, str):
        return Signature(step)
    if isinstance(step, tuple) and 1 <= len(step) <= 3:
        payload = payload_object(step[1] if len(step) > 1 else None, f"{where} payload")
        options = step[2] if len(step) > 2 else {}
        if not isinstance(options, Mapping):
            raise TypeError(f"{where} options must be a dict; got {type(options).__name__}")
        return Signature(step[0], payload, dict(options))
    make = getattr(step, "s", None)
    if callable(make):
        made = make()
        if isinstance(made, Signature):
            return made
    raise TypeError(
        f"{where} must be handle.s(...), Signature(name, payload) or (name, payload); "
        f"got {type(step).__name__}"
    )


@dataclass(frozen=True)
class Chain:
    """Steps run one after another; each receives the previous step's result."""

    steps: tuple[Signature, ...]
    kind: WorkflowKind = "chain"

    async def enqueue(self) -> WorkflowRecord:
        """Enqueue on the engine whose handlers made the steps (``handle.s(...)``)."""
        return await _bound_engine(self.steps).enqueue_workflow(self)


@dataclass(frozen=True)
class Group:
    """Members run in parallel; ``callback`` (optional) runs once all succeeded and
    receives the list of their results."""

    members: tuple[Signature, ...]
    callback: Signature | None = None
    kind: WorkflowKind = "group"

    @property
    def steps(self) -> tuple[Signature, ...]:
        return self.members + ((self.callback,) if self.callback is not None else ())

    async def enqueue(self) -> WorkflowRecord:
        return await _bound_engine(self.steps).enqueue_workflow(self)


Workflow = Chain | Group


def chain(*steps: StepLike) -> Chain:
    """``chain(a.s(...), b.s(...), …)``: run the steps in order, passing results on."""
    if len(steps) == 1 and isinstance(steps[0], list):
        steps = tuple(steps[0])
    if not steps:
        raise ValueError("a chain needs at least one step")
    return Chain(tuple(signature(s, f"chain step {i + 1}") for i, s in enumerate(steps)))


def group(*members: StepLike, callback: StepLike | None = None) -> Group:
    """``group(a.s(...), b.s(...), callback=c.s())``: run members in parallel, then the
    callback with the list of their results."""
    if len(members) == 1 and isinstance(members[0], list):
        members = tuple(members[0])
    if not members:
        raise ValueError("a group needs at least one member")
    sigs = tuple(signature(m, f"group member {i + 1}") for i, m in enumerate(members))
    return Group(sigs, None if callback is None else signature(callback, "group callback"))


def _bound_engine(steps: Iterable[Signature]) -> WorkflowEngine:
    for step in steps:
        if step.engine is not None:
            return step.engine
    raise TypeError(
        "these steps were named as text, so there is no engine to enqueue on; "
        "use await engine.enqueue_workflow(flow)"
    )


def receiving_parameter(handler: Handler, given: Mapping[str, Any], where: str, many: bool) -> str:
    """Where a step takes the previous result: a parameter name, or "" to merge an
    object result's keys. ``many``: a group callback (the value is a list)."""
    unexpected = [] if handler.accepts_any else [k for k in given if k not in handler.params]
    if unexpected:
        shown = ", ".join(f"{k!r}{suggest(str(k), handler.params)}" for k in unexpected)
        raise TypeError(f"{where}: arguments do not match {handler.signature_text()}: {shown}")
    open_params = [p for p in handler.params if p not in given]
    required = [p for p in open_params if p in handler.required]
    if len(required) == 1:
        return required[0]
    if not required and len(open_params) == 1:
        return open_params[0]
    if not required and not open_params and not handler.accepts_any:
        raise TypeError(
            f"{where}: {handler.signature_text()} has no parameter left for the "
            f"{'member results' if many else 'previous result'}; leave one out of its arguments"
        )
    if many:
        raise TypeError(
            f"{where}: a group callback receives the list of member results in one parameter, "
            f"but {handler.signature_text()} leaves {len(required)} required ones open "
            f"({', '.join(required)}); give all but one"
        )
    return ""  # several open: an object result's keys fill them


__all__ = ["Chain", "Group", "Signature", "WorkflowRecord", "WorkflowStep", "chain", "group"]
