"""Task records, task states with their allowed transitions, priorities and names.

The transition table here is the single source of truth: the engine checks it in
Python and the SQLite schema turns it into a CHECK constraint, so an illegal state
change is refused even by a hand-written UPDATE.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, ClassVar, Literal

from engine.errors import InvalidTransition


class TaskState(enum.StrEnum):
    """Where a task is in its life. Values are the lower-case names."""

    QUEUED = "queued"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_STATES: frozenset[TaskState] = frozenset(
    {TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED}
)
ACTIVE_STATES: frozenset[TaskState] = frozenset(
    {TaskState.QUEUED, TaskState.SCHEDULED, TaskState.RUNNING}
)

#: The pseudo-state of a task that does not exist yet (the source of an insert).
NEW = ""

#: Every allowed state change, keyed by the state a task leaves.
ALLOWED_TRANSITIONS: Mapping[str, frozenset[TaskState]] = {
    NEW: frozenset({TaskState.QUEUED, TaskState.SCHEDULED}),
    TaskState.QUEUED: frozenset({TaskState.RUNNING, TaskState.CANCELLED}),
    TaskState.SCHEDULED: frozenset({TaskState.QUEUED, TaskState.CANCELLED}),
    # running -> queued: lease rescued, or interrupted by a graceful stop;
    # running -> scheduled: a retry with backoff.
    TaskState.RUNNING: frozenset(
        {
            TaskState.SUCCEEDED,
            TaskState.FAILED,
            TaskState.SCHEDULED,
            TaskState.QUEUED,
            TaskState.CANCELLED,
        }
    ),
    TaskState.FAILED: frozenset({TaskState.QUEUED}),
    # cancelled -> scheduled: a workflow step stopped with its workflow waits again
    # when the step that stopped it is retried.
    TaskState.CANCELLED: frozenset({TaskState.QUEUED, TaskState.SCHEDULED}),
    TaskState.SUCCEEDED: frozenset(),
}


def is_allowed(old: str, new: str) -> bool:
    """True when a task may move from ``old`` (``""`` for a new task) to ``new``."""
    return new in ALLOWED_TRANSITIONS.get(old, frozenset())


def check_transition(old: str, new: str) -> None:
    """Raise :class:`InvalidTransition` unless ``old -> new`` is allowed."""
    if not is_allowed(old, new):
        allowed = sorted(ALLOWED_TRANSITIONS.get(old, frozenset()))
        source = old or "(new)"
        raise InvalidTransition(
            f"a task cannot move from {source} to {new}; "
            f"from {source} it may move to: {', '.join(allowed) or 'nothing'}"
        )


def transition_check_sql(old: str = "prev_state", new: str = "state", false: str = "0") -> str:
    """An SQL expression true exactly for the allowed transitions (used in a CHECK).

    A CASE on the old state costs nothing measurable per row, unlike a string
    concatenation tested against a list of pairs. A state with no way out is
    ``false`` (not ``IN (NULL)``: NULL would pass a CHECK). ``false``: the dialect's
    false literal (``0`` in SQLite, ``false`` in PostgreSQL).
    """
    arms = []
    for source, targets in ALLOWED_TRANSITIONS.items():
        allowed = ", ".join(f"'{t.value}'" for t in sorted(targets))
        arms.append(f"WHEN '{source}' THEN " + (f"{new} IN ({allowed})" if allowed else false))
    return f"CASE {old} {' '.join(arms)} ELSE {false} END"


# ---------------------------------------------------------------------------
# Priorities

MIN_PRIORITY = 0
MAX_PRIORITY = 9
DEFAULT_PRIORITY = 5
PRIORITY_NAMES: Mapping[str, int] = {"low": 2, "normal": 5, "high": 7, "critical": 9}


class Priority(enum.IntEnum):
    """The named priorities; any integer 0 … 9 is a valid priority too."""

    LOW = 2
    NORMAL = 5
    HIGH = 7
    CRITICAL = 9


def parse_priority(value: object) -> int:
    """Return a priority 0 (lowest) … 9 (highest) from an int or a name.

    Names: low=2, normal=5, high=7, critical=9 (any case). Anything else raises a
    ``ValueError`` (or ``TypeError`` for a wrong type) that states what is allowed.
    """
    allowed = (
        f"an integer from {MIN_PRIORITY} (lowest) to {MAX_PRIORITY} (highest) or one of "
        + ", ".join(f"{name} ({num})" for name, num in PRIORITY_NAMES.items())
    )
    if isinstance(value, bool):
        raise TypeError(f"priority must be {allowed}; got the boolean {value!r}")
    if isinstance(value, int):
        if MIN_PRIORITY <= value <= MAX_PRIORITY:
            return value
        raise ValueError(f"priority must be {allowed}; got {value}")
    if isinstance(value, str):
        name = value.strip().lower()
        if name in PRIORITY_NAMES:
            return PRIORITY_NAMES[name]
        if name.isdigit() and MIN_PRIORITY <= int(name) <= MAX_PRIORITY:
            return int(name)
        raise ValueError(f"priority must be {allowed}; got {value!r}")
    if isinstance(value, float):
        raise TypeError(f"priority must be {allowed}; got the float {value!r}")
    raise TypeError(f"priority must be {allowed}; got {type(value).__name__} {value!r}")


# ---------------------------------------------------------------------------
# Records


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One recorded step of a task: a state change or an operator action."""

    at: float
    state: TaskState
    attempt: int
    by: str | None = None
    note: str | None = None


CREATED = "created"


def parse_timeline(text: str, created_at: float | None = None) -> tuple[TimelineEntry, ...]:
    """Parse the stored timeline (one JSON object per line).

    A task created straight into ``queued`` has no stored creation line (that
    would cost every enqueue a write); it is derived from ``created_at``. A task
    created ``scheduled`` stores one, with the note ``created``.
    """
    entries = []
    for line in text.splitlines():
        if not line:
            continue
        raw = json.loads(line)
        entries.append(
            TimelineEntry(
                at=float(raw["at"]),
                state=TaskState(raw["state"]),
                attempt=int(raw.get("attempt", 0)),
                by=raw.get("by"),
                note=raw.get("note"),
            )
        )
    if created_at is not None and not (entries and entries[0].note == CREATED):
        entries.insert(0, TimelineEntry(created_at, TaskState.QUEUED, 0, None, CREATED))
    return tuple(entries)


def timeline_line(
    at: float, state: str, attempt: int, by: str | None = None, note: str | None = None
) -> str:
    """Format one timeline entry as stored (a JSON object and a newline).

    Built by hand (with JSON-escaped strings) because it runs once per task per
    transition on the writer thread.
    """
    head = f'{{"at":{at:.6f},"state":"{state}","attempt":{attempt}'
    if by is not None:
        head += f',"by":{_json_text(by)}'
    if note is not None:
        head += f',"note":{json.dumps(note)}'
    return head + "}\n"


@lru_cache(maxsize=1024)
def _json_text(text: str) -> str:
    return json.dumps(text)


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """A task as stored. Times are Unix timestamps in seconds."""

    id: str
    handler: str
    queue: str
    priority: int
    state: TaskState
    attempts: int
    max_retries: int
    payload: Any
    result: Any
    error: str | None
    progress: float | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    worker: str | None
    progress_message: str | None = None
    run_at: float | None = None
    timeline: tuple[TimelineEntry, ...] = field(default=(), compare=False)
    unique_key: str | None = None
    webhook: str | None = None
    #: the workflow (chain or group) this task is a step of, and which step (0 = first)
    workflow_id: str | None = None
    step: int | None = None
    #: True while a workflow step waits for earlier steps
    waiting: bool = False

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def max_attempts(self) -> int:
        return self.max_retries + 1

    @property
    def wait_time(self) -> float | None:
        """Seconds from creation (or due time) to the latest start."""
        if self.started_at is None:
            return None
        return max(0.0, self.started_at - (self.run_at or self.created_at))

    @property
    def run_time(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return max(0.0, self.finished_at - self.started_at)


class TaskId(str):
    """A task id (a decimal string) as ``enqueue`` returns it.

    ``deduplicated`` is True when the enqueue named a ``unique_key`` that an active
    task already holds: no task was added and this is that task's id.
    """

    __slots__ = ()
    deduplicated: ClassVar[bool] = False

    @staticmethod
    def held(value: object) -> TaskId:
        """The id of the active task that already holds the unique key."""
        return _HeldTaskId(value)


class _HeldTaskId(TaskId):
    """A :class:`TaskId` returned for a unique key another task holds (a class of its
    own, so that making a plain id costs no more than making a ``str``)."""

    __slots__ = ()
    deduplicated = True


def count_by_state(pairs: Iterable[tuple[str, int]]) -> dict[TaskState, int]:
    """A dict with every state present (0 where absent)."""
    counts = dict.fromkeys(TaskState, 0)
    for state, n in pairs:
        counts[TaskState(state)] += n
    return counts


# ---------------------------------------------------------------------------
# Workflow and schedule records

WorkflowKind = Literal["chain", "group"]


@dataclass(frozen=True, slots=True)
class WorkflowStep:
    """One step of a stored workflow and the state of its task."""

    index: int  # 0 = first
    task_id: str
    handler: str
    state: TaskState
    waiting: bool  # waits for earlier steps (scheduled, or cancelled when it stopped)
    callback: bool = False
    started_at: float | None = None
    finished_at: float | None = None


@dataclass(frozen=True, slots=True)
class WorkflowRecord:
    """A stored chain or group with its steps."""

    id: str
    kind: WorkflowKind
    created_at: float
    steps: tuple[WorkflowStep, ...]

    @property
    def task_ids(self) -> list[str]:
        return [s.task_id for s in self.steps]

    @property
    def state(self) -> str:
        """running, succeeded, failed or cancelled (any step failed: failed)."""
        steps = self.steps
        if any(
            s.state in (TaskState.QUEUED, TaskState.RUNNING)
            or (s.state == TaskState.SCHEDULED and not s.waiting)
            for s in steps
        ):
            return "running"
        if all(s.state == TaskState.SUCCEEDED for s in steps):
            return "succeeded"
        if any(s.state == TaskState.FAILED for s in steps):
            return "failed"
        if any(s.state == TaskState.CANCELLED and not s.waiting for s in steps):
            return "cancelled"
        return "running"


def schedule_rule(every: float | None, cron: str | None, tz: str) -> str:
    """``every 5 min`` or ``cron 0 2 * * * (UTC)``."""
    if every is not None:
        for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
            if every >= size and every % size == 0:
                return f"every {every / size:g} {unit}"
        return f"every {every:g} s"
    return f"cron {cron} ({tz})"


@dataclass(frozen=True, slots=True)
class ScheduleInfo:
    """A stored schedule as the console and ``engine.schedules()`` show it."""

    name: str
    handler: str
    queue: str
    every: float | None
    cron: str | None
    tz: str
    next_run: float
    last_run: float | None
    last_task_id: str | None
    last_state: str | None  # state of the last run's task; "expired" once it is purged
    paused: bool

    @property
    def rule(self) -> str:
        return schedule_rule(self.every, self.cron, self.tz)


# ---------------------------------------------------------------------------
# Cluster records

NodeState = Literal["alive", "stopped", "dead"]
#: Operator commands a node carries out (see :mod:`engine.cluster`).
COMMAND_ACTIONS = (
    "set_workers",
    "pause",
    "resume",
    "update_settings",
    "stop_task",
    "reprioritize",
    "reset_settings",
    "stack",
)


@dataclass(frozen=True, slots=True)
class AllPaused:
    """Everything paused (``Engine.pause_all``): no task starts on any node until
    resumed; enqueues are still accepted. ``by`` is who paused (user@host), ``note``
    why."""

    at: float
    by: str
    note: str | None = None

    def to_json(self) -> str:
        return json.dumps({"at": self.at, "by": self.by, "note": self.note})

    @classmethod
    def from_json(cls, text: str) -> AllPaused:
        """The stored flag; a value this version cannot read still means paused."""
        try:
            data = json.loads(text)
            return cls(float(data["at"]), str(data["by"]), data.get("note"))
        except (ValueError, TypeError, KeyError):
            return cls(0.0, "?", None)


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """One engine process on the store, as its last heartbeat described it."""

    id: str
    host: str
    pid: int
    version: str
    started_at: float
    last_seen: float
    state: NodeState
    workers: int
    busy: int
    #: compact picture: throughput, failures_per_minute, cpu, rss, paused, queues
    snapshot: Mapping[str, Any] = field(default_factory=dict)
    #: the handler names it runs; None when it did not say (a version before 4 of the
    #: store's schema), so what it serves is unknown
    handlers: tuple[str, ...] | None = None

    @property
    def throughput(self) -> float:
        return float(self.snapshot.get("throughput", 0.0))


@dataclass(frozen=True, slots=True)
class NodeCommand:
    """An operator command for one node (``target`` = its id) or all (``"*"``)."""

    id: int
    target: str
    action: str
    args: Mapping[str, Any]
    created_at: float
    by: str


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What one node did with a command."""

    command_id: int
    node: str
    done_at: float
    ok: bool
    outcome: str


@dataclass(frozen=True, slots=True)
class SavedSetting:
    """A setting changed at runtime, as the store keeps it: its value as JSON, and who
    changed it (user@host, process id, interface) and when (see
    :mod:`engine.saved_settings`)."""

    name: str
    value: str
    changed_at: float
    changed_by: str
    pid: int
    interface: str
