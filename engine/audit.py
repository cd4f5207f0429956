"""``engine.audit``: the audit trail — who did what, to what, when, how it ended, why.

Every operator action through the engine — cancel, retry, reprioritize, purge,
pause and resume (a queue or everything), set workers, settings changed or reset,
schedule pause/resume/run, alert ack/silence/test, node commands — is written to
the store's ``audit`` table with its :class:`~engine.actor.Actor` (OS user, host,
process id, interface), the target, the outcome (refusals too) and an optional
note. Enqueues are recorded when an operator makes them: from the console or the
CLI, or in your code inside :meth:`Audit.note`; your program's own enqueues are
the workload, not operator actions, and are not recorded.

A note is given for the actions in a block::

    with engine.audit.note("INC-4211: images backlog"):
        await engine.pause("images")

Commands another node carries out for an operator are recorded once, by the node
that sent them; the autoscaler's own resizes are not operator actions. Entries
older than the ``audit_retention`` setting are deleted by the engine's cleanup.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

from engine.actor import Actor
from engine.checks import parse_task_id
from engine.errors import StoreError, TaskNotFound
from engine.settings import Settings
from engine.store import audit as plans
from engine.store.base import Store

log = logging.getLogger(__name__)

MAX_NOTE = 500  # characters in an operator's note
MAX_OUTCOME = 500
MAX_LIMIT = 100_000


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One operator action. ``ok``: it was carried out (else ``outcome`` says why not);
    ``task_id``: the task it was about, if one."""

    id: int
    at: float
    user: str
    host: str
    pid: int
    interface: str
    action: str
    target: str
    outcome: str
    ok: bool
    note: str | None
    task_id: str | None

    @property
    def who(self) -> str:
        """``alice@build-7``."""
        return f"{self.user}@{self.host}"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "who": self.who}


def check_note(note: object) -> str | None:
    """A note as stored: None or stripped text of at most :data:`MAX_NOTE` characters."""
    if note is None:
        return None
    if not isinstance(note, str):
        raise TypeError(f"note: must be text; got {type(note).__name__}")
    text = note.strip()
    if len(text) > MAX_NOTE:
        raise ValueError(f"note: at most {MAX_NOTE} characters; got {len(text)}")
    if any(not ch.isprintable() for ch in text):
        raise ValueError("note: must be one line of printable text (no control characters)")
    return text or None


def _clean(note: str) -> str | None:
    """A note given with an action (an ack's, a silence's): kept, never refused."""
    text = "".join(ch if ch.isprintable() else " " for ch in str(note)).strip()
    return text[:MAX_NOTE] or None


class Outcome:
    """What an audited action came to; the action's block sets ``text``."""

    __slots__ = ("text",)

    def __init__(self) -> None:
        self.text = "ok"


@dataclass(frozen=True, slots=True)
class _Acting:
    note: str | None


class Audit:
    """Records operator actions and reads them back (``engine.audit``)."""

    def __init__(
        self,
        store: Store,
        actor: Callable[[], Actor],
        set_actor: Callable[[Actor], None],
        clock: Callable[[], float],
        settings: Callable[[], Settings],
        writable: Callable[[], bool],
    ) -> None:
        self._store, self._actor, self._set_actor, self._clock = store, actor, set_actor, clock
        self._settings, self._writable = settings, writable
        # Per engine, per asyncio task: the operator's note, and "not an operator action".
        self._acting: ContextVar[_Acting | None] = ContextVar(f"audit-{id(self)}", default=None)
        self._quiet: ContextVar[bool] = ContextVar(f"audit-quiet-{id(self)}", default=False)

    @property
    def actor(self) -> Actor:
        """Who this engine's actions are recorded as."""
        return self._actor()

    def act_as(self, interface: str) -> Actor:
        """From now on record this engine's actions (and saved settings) as made through
        ``interface`` (``api``, ``cli``, ``console``) — the console does so for the engine
        it runs, yours included. Returns the new actor."""
        actor = Actor.here(interface)
        self._set_actor(actor)
        return actor

    @contextmanager
    def note(self, text: str | None = None) -> Iterator[None]:
        """Operator actions in this block are recorded with ``text`` (None: no note);
        enqueues in it are recorded too (they are an operator's, not the workload)."""
        token = self._acting.set(_Acting(check_note(text)))
        try:
            yield
        finally:
            self._acting.reset(token)

    @contextmanager
    def quiet(self) -> Iterator[None]:
        """Nothing in this block is recorded (the autoscaler, a node carrying out a
        command another node sent and recorded, the demo's load)."""
        token = self._quiet.set(True)
        try:
            yield
        finally:
            self._quiet.reset(token)

    @property
    def current_note(self) -> str | None:
        """The note of the :meth:`note` block this runs in (None: none)."""
        acting = self._acting.get()
        return acting.note if acting is not None else None

    @property
    def operator_enqueue(self) -> bool:
        """Whether an enqueue now is an operator's (inside :meth:`note`)."""
        return self._acting.get() is not None and not self._quiet.get()

    @asynccontextmanager
    async def action(
        self, action: str, target: str, task_id: int | None = None, note: str | None = None
    ) -> AsyncIterator[Outcome]:
        """Record the action in this block: its outcome (``ok``, or what the block
        set), or the error it raised (then re-raised)."""
        outcome = Outcome()
        if self._quiet.get():
            yield outcome
            return
        try:
            yield outcome
        except StoreError:
            raise  # the store refused the write (locked, down): recording would wait again
        except Exception as exc:
            text = f"{type(exc).__name__}: {exc}"
            if isinstance(exc, TaskNotFound):  # about no task: not in any task's history
                task_id = None
            await self.record(action, target, text, ok=False, task_id=task_id, note=note)
            raise
        await self.record(action, target, outcome.text, ok=True, task_id=task_id, note=note)

    async def record(
        self,
        action: str,
        target: str,
        outcome: str = "ok",
        *,
        ok: bool = True,
        task_id: int | None = None,
        note: str | None = None,
    ) -> None:
        """Write one entry (by this engine's actor, with the block's note unless
        ``note`` is given). A store that refuses it is logged, not raised: the action
        itself already happened."""
        if self._quiet.get() or not self._writable():
            return
        acting = self._acting.get()
        text = _clean(note) if note is not None else acting.note if acting else None
        a = self.actor
        row = (
            self._clock(), a.user, a.host, a.pid, a.interface, action, target[:MAX_OUTCOME],
            outcome[:MAX_OUTCOME], ok, text, task_id,
        )  # fmt: skip
        try:
            await self._store.run_plan(partial(plans.add, row=row))
        except Exception as exc:
            log.error("could not record %s %s in the audit trail: %s", action, target, exc)

    async def entries(
        self,
        *,
        since: float | None = None,
        task: str | int | None = None,
        actor: str | None = None,
        action: str | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """Entries, newest first: since a Unix time, about one task, by one user (``alice``
        or ``alice@host``), of one action; at most ``limit``."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit: a whole number from 1 to {MAX_LIMIT:,}; got {limit!r}")
        if since is not None and (isinstance(since, bool) or not isinstance(since, int | float)):
            raise TypeError(f"since: a Unix time in seconds; got {type(since).__name__}")
        tid = None if task is None else parse_task_id(task)
        user, _, host = (actor or "").partition("@")
        if actor is not None and not user:
            raise ValueError(f"actor: a user name or user@host; got {actor!r}")
        found = await self._store.run_plan(
            partial(
                plans.entries, since=since, task_id=tid, user=user or None, host=host or None,
                action=action, limit=limit,
            )
        )  # fmt: skip
        return [_entry(r) for r in found]

    async def forget(self) -> int:
        """Delete entries older than ``audit_retention``; returns how many."""
        keep = self._settings().audit_retention
        return await self._store.run_plan(partial(plans.forget, before=self._clock() - keep))


def _entry(row: Any) -> AuditEntry:
    (id_, at, user, host, pid, interface, action, target, outcome, ok, note, task_id) = row
    return AuditEntry(
        int(id_), float(at), user, host, int(pid), interface, action, target, outcome,
        bool(ok), note, None if task_id is None else str(task_id),
    )  # fmt: skip
