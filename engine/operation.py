"""A bulk operation as the engine reports it (see :mod:`engine.ops`), and how the
caller's selection and arguments are checked before anything is stored."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.checks import check_handler_name, check_queue_name, parse_task_id
from engine.model import MAX_PRIORITY, MIN_PRIORITY, parse_priority
from engine.reads import parse_state
from engine.store.ops import Where

#: What a bulk operation can do; each needs the argument named here (None: none).
ACTIONS: dict[str, str | None] = {
    "cancel": None,
    "retry": None,
    "reprioritize": "priority",
    "move": "to_queue",
    "set-retries": "retries",
    "purge": None,
}
#: Actions a person is asked to confirm first (they end or delete work).
DESTRUCTIVE = frozenset({"cancel", "purge"})
FINISHED = frozenset({"done", "aborted", "failed", "interrupted"})
MAX_RETRIES = 100
MAX_IDS = 1_000_000


@dataclass(frozen=True, slots=True)
class Operation:
    """A named, durable bulk operation: what it does to which tasks, how far it got,
    and what came of it (``reasons``: why tasks were skipped, with how many each).

    ``state``: ``pending``, ``running``, ``done``, ``aborted`` (stopped on request),
    ``failed`` (an error, in ``error``), ``interrupted`` (its engine stopped), or
    ``dry run`` (nothing stored or changed: ``changed`` is what it would change)."""

    id: int
    action: str
    args: dict[str, Any]
    selection: dict[str, Any]
    state: str
    total: int
    done: int = 0
    changed: int = 0
    skipped: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    actor: str = ""
    note: str | None = None
    error: str | None = None
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    owner: str = ""

    @property
    def finished(self) -> bool:
        return self.state in FINISHED or self.state == "dry run"

    @property
    def fraction(self) -> float:
        return 1.0 if self.total <= 0 else min(1.0, self.done / self.total)

    @property
    def target(self) -> str:
        """The selection in words: ``3 ids``, ``state=queued queue=images`` (and the
        query as typed)."""
        ids = self.selection.get("ids")
        if ids is not None:
            return f"{len(ids):,} id{'s' if len(ids) != 1 else ''}"
        fields = ("state", "queue", "handler")
        shown = [f"{k}={self.selection[k]}" for k in fields if self.selection.get(k)]
        if self.selection.get("where"):
            shown.append(str(self.selection["where"]))
        return " ".join(shown) or "all tasks"

    @property
    def title(self) -> str:
        """``reprioritize → 7``, ``move → urgent``, ``set-retries → 5``, ``cancel``."""
        if "step" in self.args:  # reprioritize by a step: ``reprioritize → +1``
            return f"{self.action} → {int(self.args['step']):+d}"
        arg = ACTIONS.get(self.action)
        return self.action if arg is None else f"{self.action} → {self.args.get(arg)}"

    def summary(self) -> str:
        """``12,000 changed, 3 skipped (2 running, 1 already priority 7)``."""
        verb = "would change" if self.state == "dry run" else "changed"
        return f"{self.changed:,} {verb}, {self.skipped:,} skipped" + self.why_skipped()

    def why_skipped(self, most: int | None = None) -> str:
        """`` (2 running, 1 already priority 7)``: the skip reasons, commonest first (the
        ``most`` commonest only, if given); empty when there are none."""
        if not self.reasons:
            return ""
        why = sorted(self.reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:most]
        return " (" + ", ".join(f"{n:,} {r}" for r, n in why) + ")"

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": str(self.id), "action": self.action, "args": self.args,
            "selection": self.selection, "state": self.state, "total": self.total,
            "done": self.done, "changed": self.changed, "skipped": self.skipped,
            "reasons": self.reasons, "actor": self.actor, "note": self.note,
            "error": self.error, "created_at": self.created_at,
            "started_at": self.started_at, "finished_at": self.finished_at,
            "owner": self.owner, "summary": self.summary(),
        }  # fmt: skip


def from_row(r: Any) -> Operation:
    (id_, action, args, selection, state, total, done, changed, skipped, reasons, _cursor,
     _max_id, owner, actor, note, error, created, started, finished, _beat, _abort) = r  # fmt: skip
    return Operation(
        int(id_), action, json.loads(args), json.loads(selection), state, int(total),
        int(done), int(changed), int(skipped), json.loads(reasons), actor, note, error,
        float(created), started, finished, owner,
    )  # fmt: skip


def check_action(action: object) -> str:
    if not isinstance(action, str) or action.replace("_", "-") not in ACTIONS:
        raise ValueError(f"unknown bulk action {action!r}; use one of {', '.join(ACTIONS)}")
    return action.replace("_", "-")


def check_args(action: str, priority: Any, to_queue: Any, retries: Any) -> dict[str, Any]:
    """The action's argument, checked; an argument another action takes is refused."""
    given = {"priority": priority, "to_queue": to_queue, "retries": retries}
    needed = ACTIONS[action]
    extra = [k for k, v in given.items() if v is not None and k != needed]
    if extra:
        raise TypeError(f"{action} takes no {extra[0]} argument")
    if needed is None:
        return {}
    if given[needed] is None:
        raise TypeError(f"{action} needs {needed}=...")
    if needed == "priority":
        step = relative_step(priority)
        return {"priority": parse_priority(priority)} if step is None else {"step": step}
    if needed == "to_queue":
        return {"queue": check_queue_name(to_queue)}
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= MAX_RETRIES:
        raise ValueError(f"retries must be a whole number from 0 to {MAX_RETRIES}; got {retries!r}")
    return {"retries": retries}


def relative_step(priority: Any) -> int | None:
    """``"+1"``, ``"-2"``: a step up or down from each task's own priority (kept within
    the range); None for an absolute priority (a number or a name)."""
    if not isinstance(priority, str) or priority.strip()[:1] not in ("+", "-"):
        return None
    text = priority.strip()
    span = MAX_PRIORITY - MIN_PRIORITY
    if not text[1:].isdigit() or not 1 <= int(text[1:]) <= span:
        raise ValueError(
            f"a priority step must be +N or -N with N from 1 to {span} (e.g. +1 raises each "
            f"task by one); got {priority!r}"
        )
    return int(text)


def check_selection(
    ids: Sequence[str | int] | None, state: Any, queue: Any, handler: Any
) -> tuple[Where, dict[str, Any]]:
    """The selection as SQL and as stored text: ids, or the filter fields. Ids and a
    filter together are refused (say which tasks: the ids, or a filter)."""
    if ids is not None:
        if isinstance(ids, str | bytes):
            raise TypeError("ids must be a list of task ids, not one string")
        if state is not None or queue is not None or handler is not None:
            raise TypeError("give ids or a filter (state, queue, handler), not both")
        numbers = sorted({parse_task_id(i) for i in ids})
        if len(numbers) > MAX_IDS:
            raise ValueError(f"at most {MAX_IDS:,} ids; got {len(numbers):,}")
        return Where(ids=tuple(numbers)), {"ids": [str(i) for i in numbers]}
    st = parse_state(state)
    q = None if queue is None else check_queue_name(queue)
    h = None if handler is None else check_handler_name(handler)
    shown = {"state": None if st is None else st.value, "queue": q, "handler": h}
    return Where(None, shown["state"], q, h), shown


def where_of(selection: dict[str, Any]) -> Where:
    """The stored selection back as SQL (an operation resumed after a restart)."""
    ids = selection.get("ids")
    if ids is not None:
        return Where(ids=tuple(sorted(int(i) for i in ids)))
    return Where(None, selection.get("state"), selection.get("queue"), selection.get("handler"))
