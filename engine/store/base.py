"""The Store contract: what every backend (SQLite, PostgreSQL) provides. The engine talks
to a store only through this protocol. Payloads, results and errors cross it as *encoded
text* (see :mod:`engine.codec`); reads that return :class:`~engine.model.TaskRecord` decode
them with the store's codec. Times are taken from the store's clock so tests can move time.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from engine.codec import Codec, to_json
from engine.errors import TaskNotFound
from engine.limits import FlowLimits
from engine.model import (
    CREATED,
    TERMINAL_STATES,
    AllPaused,
    CommandResult,
    NodeCommand,
    NodeInfo,
    SavedSetting,
    ScheduleInfo,
    TaskId,
    TaskRecord,
    TaskState,
    WorkflowRecord,
    timeline_line,
)
from engine.query import Node

#: The due time of a workflow step that waits for earlier steps (year 3000): never
#: promoted by time, and sorted after every real due time.
WAITING_RUN_AT = 32_503_680_000.0
T = TypeVar("T")

#: The built-in handler that POSTs a finished task's record to its webhook URL.
WEBHOOK_HANDLER = "taskdeck.webhook"
WEBHOOK_QUEUE = "webhooks"
WEBHOOK_RETRIES = 5


def webhook_task(url: str, task_id: int, state: TaskState, codec: Codec) -> NewTask:
    """The ``taskdeck.webhook`` task that POSTs a finished task's outcome to ``url``
    (as stored: sealed with a key)."""
    body = {"url": codec.unseal(url), "task_id": str(task_id), "state": state.value}
    return NewTask(WEBHOOK_HANDLER, WEBHOOK_QUEUE, 5, codec.seal(to_json(body)), WEBHOOK_RETRIES)


def task_missing(task_id: int | str) -> TaskNotFound:
    return TaskNotFound(f"no task with id '{task_id}'")


def schedule_missing(name: str) -> TaskNotFound:
    return TaskNotFound(f"no schedule named {name!r}")


@dataclass(slots=True)
class NewTask:
    """A task to insert. ``run_at`` in the future makes it ``scheduled``."""

    handler: str
    queue: str
    priority: int
    payload: str
    retries: int
    run_at: float | None = None
    unique_key: str | None = None
    webhook: str | None = None
    #: workflow steps (engine.workflow): the index and how it takes the previous result
    step: int | None = None
    receives: str | None = None
    waiting: bool = False  #: whether it waits for earlier steps
    trace: str | None = None  #: the enqueue's W3C trace context (JSON; engine.tracing)

    @property
    def plain(self) -> bool:
        """No unique key, webhook or workflow: the bulk insert path applies."""
        return self.unique_key is None and self.webhook is None and self.step is None


@dataclass(frozen=True, slots=True)
class StoredSchedule:
    """A schedule definition as the store keeps it (payload sealed)."""

    name: str
    handler: str
    payload: str  # sealed
    payload_json: str  # the same, as plain JSON, to compare with what is stored
    queue: str
    priority: int
    retries: int
    every: float | None
    cron: str | None
    tz: str
    first_run: float


def first_state(task: NewTask, now: float, by: str) -> tuple[TaskState, str, float | None]:
    """The state a new task starts in, its first timeline line(s), and its due time:
    a waiting workflow step, a task due later (scheduled), or queued (whose creation
    entry is derived from created_at, so nothing is stored for it)."""
    if task.waiting:
        note = f"waiting for step {task.step}" if task.step else "waiting"
        line = timeline_line(now, TaskState.SCHEDULED, 0, by, CREATED)
        return (
            TaskState.SCHEDULED,
            line + timeline_line(now, "scheduled", 0, by, note),
            (WAITING_RUN_AT),
        )
    if task.run_at is not None and task.run_at > now:
        line = timeline_line(now, TaskState.SCHEDULED, 0, by, CREATED)
        return TaskState.SCHEDULED, line, task.run_at
    return TaskState.QUEUED, "", task.run_at


@dataclass(frozen=True, slots=True)
class ClaimedTask:
    """A task this node now holds a lease on (state ``running``)."""

    id: int
    handler: str
    queue: str
    priority: int
    attempts: int
    max_retries: int
    payload: str
    created_at: float
    run_at: float | None
    started_at: float
    workflow_id: int | None = None
    webhook: str | None = None
    trace: str | None = None  #: the enqueue's W3C trace context (JSON), if traced

    @classmethod
    def handed_over(cls, task_id: int, task: NewTask, now: float) -> ClaimedTask:
        """A plain task inserted already leased to an idle worker (its first attempt)."""
        return cls(
            task_id,
            task.handler,
            task.queue,
            task.priority,
            1,
            task.retries,
            task.payload,
            now,
            None,
            now,
            trace=task.trace,
        )


class Claimed(list[ClaimedTask]):
    """What a claim leased, best first, and when a rate limit that held some tasks
    back has a token again (seconds from now; None when no rate limit held any back).

    Of the ``held`` ids the claim was asked to check: ``gone``, those no longer leased
    to the claimer (cancelled, or rescued elsewhere), and ``paused``, those still
    leased to it whose queue is paused."""

    retry_in: float | None = None
    gone: frozenset[int] = frozenset()
    paused: frozenset[int] = frozenset()

    def check(self, held: Sequence[int], rows: Sequence[tuple[int, bool, bool]]) -> Claimed:
        """Set ``gone`` and ``paused`` from (id, still leased to us, queue paused) rows
        read for the ``held`` ids (a purged task has no row: gone)."""
        ours = {row[0] for row in rows if row[1]}
        self.gone = frozenset(held) - ours
        self.paused = frozenset(row[0] for row in rows if row[1] and row[2])
        return self


@dataclass(slots=True)
class Completion:
    """The outcome of one attempt, applied only if the lease is still ours (fencing).

    ``state`` is the new state: succeeded, failed, scheduled (retry after a delay),
    or queued (retry now). ``release=True`` returns an interrupted or unstarted task
    to the queue without using an attempt.
    """

    task_id: int
    attempt: int
    owner: str
    state: TaskState
    at: float
    result: str | None = None
    error: str | None = None
    run_at: float | None = None
    worker: str | None = None
    progress: float | None = None
    progress_message: str | None = None
    note: str | None = None
    release: bool = False
    #: a release of a task that never started here (held ready, then given back): the
    #: store undoes its claim (attempts and timeline as before it); ``at`` is then
    #: the claim's time
    unstarted: bool = False
    handler: str = ""
    queue: str = ""
    #: what a final state sets off: the next workflow step, a webhook task
    workflow_id: int | None = None
    webhook: str | None = None

    @property
    def sets_off_follow_ups(self) -> bool:
        """A final state of a workflow step or of a task with a webhook: applying it
        also moves the workflow on or inserts the webhook task."""
        return (
            (self.workflow_id is not None or self.webhook is not None)
            and self.state in TERMINAL_STATES
            and not self.release
        )


@dataclass(slots=True)
class CompletionReport:
    """Which completions were applied, and which were stale (lease lost)."""

    applied: list[Completion] = field(default_factory=list)
    stale: list[Completion] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Rescued:
    """A task whose lease expired, now queued again (or failed: no attempts left)."""

    id: int
    handler: str
    queue: str
    state: TaskState
    attempts: int
    max_retries: int
    owner: str


@dataclass(frozen=True, slots=True)
class Expired:
    """A finished task removed by the result-TTL cleanup."""

    id: str
    handler: str
    queue: str
    state: TaskState
    finished_at: float


@dataclass(frozen=True)
class StoreCounts:
    """Task counts per queue and state, the paused queues, and ``all_paused``."""

    by_queue: Mapping[str, Mapping[TaskState, int]] = field(default_factory=dict)
    paused: frozenset[str] = frozenset()
    all_paused: AllPaused | None = None

    def totals(self) -> dict[TaskState, int]:
        out = dict.fromkeys(TaskState, 0)
        for states in self.by_queue.values():
            for state, n in states.items():
                out[state] += n
        return out

    def depth(self, queue: str) -> int:
        return self.by_queue.get(queue, {}).get(TaskState.QUEUED, 0)


@dataclass(frozen=True, slots=True)
class OpenMode:
    """How a store is opened. ``create``: a store that does not exist yet is made
    (otherwise refused with ``StoreOpenError``). ``read_only``: nothing is written, not
    even a migration; every write raises ``ReadOnlyError`` (implies no ``create``).
    ``client``: opened for commands only (``Engine.client()``): no background loops."""

    read_only: bool = False
    create: bool = True
    client: bool = False


@dataclass(frozen=True)
class TaskFilter:
    """Which tasks ``tasks()`` returns, and in which window."""

    state: TaskState | None = None
    queue: str | None = None
    handler: str | None = None
    id_prefix: str | None = None
    limit: int = 100
    offset: int = 0
    text: str | None = None  # a substring of the handler or queue name
    where: Node | None = None  # a parsed query's terms (see engine.query)


class Store(Protocol):
    """Durable task storage shared by every engine process on the same URL."""

    url: str

    #: write transactions this process has committed (or tried), for the stats
    transactions: int

    @property
    def split_claims(self) -> bool:
        """Whether a pool claims at most half its slots at a time (an embedded store:
        the loop and the writer thread overlap) rather than every free slot at once."""
        ...

    def set_wakeup(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when another process has made tasks ready, so an idle
        pool wakes at once instead of at its next poll (a store that cannot tell
        keeps it and is polled)."""

    @property
    def encrypted(self) -> bool: ...

    async def open(self, mode: OpenMode | None = None) -> None:
        """Open the store (``mode``: see :class:`OpenMode`; None: the defaults)."""

    async def close(self) -> None: ...

    def configure(self, *, durability: str, busy_timeout: float, lock_timeout: float) -> None:
        """Apply runtime settings (used from the next transaction on)."""

    def give_up_at(self, deadline: float) -> None:
        """Writes waiting for a lock (or retrying) give up at ``deadline``
        (``time.monotonic()``), even those already waiting: a stopping engine's bound."""

    # -- writes -------------------------------------------------------------
    async def enqueue(self, tasks: Sequence[NewTask]) -> list[TaskId]:
        """Insert all tasks in one transaction (all or nothing); returns their ids
        (``deduplicated`` where a unique key was already held)."""

    async def enqueue_workflow(
        self, kind: str, tasks: Sequence[NewTask]
    ) -> tuple[int, list[TaskId]]:
        """Store a workflow (``chain`` or ``group``) and its steps in one transaction;
        returns its id and the steps' task ids."""

    async def workflow(self, workflow_id: int) -> WorkflowRecord:
        """A workflow with the state of each step; ``LookupError`` if there is none."""

    # -- periodic schedules (see engine.schedule) ------------------------------
    async def sync_schedules(self, schedules: Sequence[StoredSchedule]) -> list[str]:
        """Store the schedules defined in code; returns those added or changed."""

    async def fire_schedules(
        self, next_run: Callable[..., float]
    ) -> tuple[list[tuple[str, str, str]], float | None]:
        """Enqueue every due periodic run (each exactly once, whatever the number of
        processes); returns (schedule, task id, queue) per run and the next due time."""

    async def set_schedule_paused(
        self, name: str, paused: bool, next_run: Callable[..., float]
    ) -> bool:
        """Pause or resume a schedule; returns whether anything changed."""

    async def trigger_schedule(self, name: str, by: str) -> str:
        """Enqueue a run of ``name`` now; returns the task id."""

    async def schedules(self) -> list[ScheduleInfo]: ...

    # -- cluster (see engine.cluster) ------------------------------------------
    async def heartbeat(self, node: NodeInfo, dead_after: float) -> list[NodeCommand]:
        """Save this node's row (alive), mark nodes silent for ``dead_after`` seconds
        as dead, and return the commands for this node it has not answered yet."""

    async def node_stopped(self, node_id: str) -> None:
        """Mark a node as stopped (a graceful stop)."""

    async def send_command(self, target: str, action: str, args: str, by: str) -> int:
        """Store a command (``args`` as JSON) for one node or ``"*"``; returns its id."""

    async def record_command(self, result: CommandResult) -> None:
        """Save what a node did with a command."""

    async def nodes(self, dead_after: float) -> list[NodeInfo]:
        """Every node row, alive ones first; an alive one silent for ``dead_after``
        seconds is reported dead."""

    async def command_results(self, command_id: int) -> list[CommandResult]: ...

    async def save_settings(
        self, saved: Sequence[SavedSetting], removed: Sequence[str], command: tuple[str, str, str]
    ) -> int:
        """Save runtime settings, delete ``removed`` ones and send ``command`` (action, JSON
        args, by) to every node, in one transaction; returns the command's id."""

    async def saved_settings(self) -> list[SavedSetting]: ...

    async def enqueue_and_claim(
        self, task: NewTask, owner: str, lease_ttl: float
    ) -> tuple[TaskId, ClaimedTask | None]:
        """Insert ``task``; if no task waits in any unpaused queue, insert it already
        leased to ``owner`` (an idle worker takes it without another round trip)."""

    async def claim(
        self,
        owner: str,
        limit: int,
        handlers: Sequence[str],
        lease_ttl: float,
        flow: FlowLimits | None = None,
        held: Sequence[int] = (),
    ) -> Claimed:
        """Lease up to ``limit`` queued tasks of the given handlers from unpaused queues,
        highest priority first, FIFO within a priority. Counts an attempt for each.
        ``flow``: rate limits, concurrency limits and queue weights, enforced across
        every process on the store. ``held``: tasks ``owner`` claimed earlier and holds
        unstarted; the same transaction says which of them are gone or paused (see
        :class:`Claimed`)."""

    async def complete(self, completions: Sequence[Completion]) -> CompletionReport: ...

    async def renew_leases(self, owner: str, lease_ttl: float) -> set[int]:
        """Extend every lease ``owner`` holds; returns the ids still leased to it."""

    async def rescue(self, exclude_owner: str) -> list[Rescued]:
        """Requeue (or fail, when out of attempts) tasks whose leases expired."""

    async def promote_due(self) -> tuple[list[tuple[int, str]], float | None]:
        """Move due scheduled tasks to queued; returns (id, queue) pairs and the next due time."""

    async def cancel(self, task_id: int, by: str, note: str) -> TaskState:
        """Cancel a queued, scheduled or running task; returns its previous state."""

    async def reprioritize(self, task_id: int, priority: int, by: str) -> int:
        """Change a queued or scheduled task's priority; returns the old one."""

    async def retry(self, task_id: int, by: str, retries: int | None) -> TaskState:
        """Queue a failed or cancelled task again; returns its previous state."""

    async def retry_where(
        self, states: Sequence[TaskState], queue: str | None, handler: str | None, by: str,
        ids: Sequence[int] | None = None,
    ) -> int:  # fmt: skip
        """Queue every failed or cancelled task matching the filter (and ``ids``) again."""

    async def purge(
        self,
        states: Sequence[TaskState],
        queue: str | None,
        handler: str | None,
        ids: Sequence[int] | None,
    ) -> int:
        """Delete finished tasks matching the filter; returns how many."""

    async def purge_expired(
        self, result_ttl: float, failed_ttl: float, limit: int
    ) -> list[Expired]: ...

    async def save_progress(
        self, items: Sequence[tuple[int, str, float | None, str | None]]
    ) -> None:
        """Persist (id, owner, fraction, message) for running tasks."""

    async def run_plan(self, plan: Callable[[Any], Generator[Any, Any, T]]) -> T:
        """Run a plan (see :mod:`engine.store.plans`: alerts, audit) in one write
        transaction, or, if it only reads, on a read connection."""
        ...

    async def set_paused(
        self, queue: str | None, paused: bool, by: str = "", note: str | None = None
    ) -> bool:
        """Pause or resume a queue, or (None) everything, keeping ``by`` and ``note``;
        returns whether anything changed."""

    def latency_p99(self) -> float | None:
        """p99 of recent write-transaction times, in seconds (None before any)."""

    # -- reads --------------------------------------------------------------
    async def oldest_queued(self) -> dict[str, float]:
        """Per queue, when its oldest queued task was created (Unix seconds)."""

    async def unclaimable(self, handlers: Sequence[str], limit: int = 1000) -> dict[str, int]:
        """Handlers of queued tasks (the first ``limit`` found) not in ``handlers``, with
        how many of those tasks each has."""

    async def get(self, task_id: int) -> TaskRecord: ...

    async def tasks(self, flt: TaskFilter) -> list[TaskRecord]: ...

    async def position(self, task_id: int, flt: TaskFilter) -> int | None:
        """Where ``task_id`` is in ``tasks(flt)``'s order (0 = first; the window is
        ignored), or None when the task is not in that list."""
        ...

    async def around(
        self, task_id: int, flt: TaskFilter, before: int
    ) -> tuple[int, list[TaskRecord]] | None:
        """``(offset, rows)``: ``flt.limit`` rows of ``tasks(flt)`` starting up to
        ``before`` rows ahead of ``task_id``, and where they start; None when the task
        is not in that list."""
        ...

    async def counts(self) -> StoreCounts: ...

    @property
    def last_counts(self) -> StoreCounts:
        """Counts as of the latest transaction this process committed or read."""
