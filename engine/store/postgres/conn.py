"""PostgreSQL plumbing for the store: the URL, error translation, and one transaction.

A store URL is ``postgresql://user[:password]@host[:port]/database`` (or
``postgres://…``) with an optional ``?schema=name`` (default ``public``); other
query parameters (``sslmode`` …) are handed to asyncpg. :class:`Txn` is one open
write transaction: the operations in :mod:`engine.store.postgres.tasks` record their
count changes and the queues they made ready on it, and :meth:`Txn.finish` writes
the counts, sends the wake-up ``NOTIFY`` and reads every count back in one
statement just before ``COMMIT``.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import asyncpg

from engine.errors import StoreError, StoreOpenError
from engine.faults import no_fault
from engine.model import AllPaused, TaskState
from engine.store.base import StoreCounts

_URL_HELP = "use postgresql://user[:password]@host[:port]/database[?schema=name]"
_SCHEMA_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
#: Count rows are spread over this many shards (by backend pid) so that concurrent
#: transactions of several nodes rarely wait for the same counter row.
COUNT_SHARDS = 16


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class PgTarget:
    """Where a PostgreSQL store lives, parsed from its URL."""

    url: str  # as shown: the password replaced by ***
    dsn: str  # for asyncpg: without the schema parameter
    host: str
    port: int
    database: str
    schema: str

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port} (database {self.database})"

    @property
    def channel(self) -> str:
        """The LISTEN/NOTIFY channel of this store (one per schema)."""
        return f"taskdeck_{self.schema}"[:63]


def parse_url(url: str) -> PgTarget:
    """Parse a PostgreSQL store URL; ``StoreOpenError`` says what is wrong with it."""
    text = url.strip()
    try:
        parts = urlsplit(text)
        port = parts.port or 5432
    except ValueError as exc:
        raise StoreOpenError(
            f"not a valid PostgreSQL URL {_redact(text)!r}: {exc}; {_URL_HELP}"
        ) from None
    if parts.scheme.lower() not in ("postgres", "postgresql"):
        raise StoreOpenError(f"not a PostgreSQL URL: {_redact(text)!r}; {_URL_HELP}")
    host = parts.hostname or "localhost"
    user = unquote(parts.username) if parts.username else None
    database = unquote(parts.path.lstrip("/")) or user or "postgres"
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = "public"
    rest = []
    for key, value in query:
        if key == "schema":
            schema = value
        else:
            rest.append((key, value))
    if not _SCHEMA_RE.fullmatch(schema):
        raise StoreOpenError(
            f"schema {schema!r} in {_redact(text)!r} is not a plain name: use 1–63 letters, "
            "digits or '_', starting with a letter or '_'"
        )
    dsn = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(rest, quote_via=quote), ""))
    return PgTarget(_redact(text), dsn, host, port, database, schema)


def _redact(url: str) -> str:
    """The URL with its password (if any) replaced by ``***``."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    if not password:
        return url
    user, _, host = parts.netloc.rpartition("@")
    name = user.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{name}:***@{host}"))


# -- errors ---------------------------------------------------------------------

#: Errors that mean the connection is gone (the transaction did not commit, unless
#: the error came while committing).
_LOST = (
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
    ConnectionError,
    OSError,
    TimeoutError,
)
#: Everything the driver raises (and nothing else).
DRIVER_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)
#: Errors after which the whole transaction may simply run again.
RETRYABLE = (
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
    asyncpg.UniqueViolationError,
)


def is_connection_lost(exc: BaseException) -> bool:
    """The connection is gone or unusable (closed, released under us, or left in the
    middle of an operation by a failure): drop it and use a fresh one."""
    if isinstance(exc, (*_LOST, asyncpg.InternalClientError)):
        return True
    return isinstance(exc, asyncpg.InterfaceError) and not isinstance(
        exc, asyncpg.DataError | asyncpg.ClientConfigurationError
    )


def open_error(target: PgTarget, exc: BaseException) -> StoreOpenError:
    """Why a connection could not be made, naming host, port and database."""
    if isinstance(exc, ConnectionRefusedError):
        why = "connection refused (is the server running and accepting TCP connections?)"
    elif isinstance(exc, TimeoutError):
        why = "timed out"
    elif isinstance(exc, OSError) and exc.__class__.__name__ == "gaierror":
        why = f"unknown host {target.host!r}"
    elif isinstance(exc, asyncpg.InvalidCatalogNameError):
        why = f"database {target.database!r} does not exist"
    elif isinstance(exc, asyncpg.InvalidPasswordError):
        why = "password authentication failed"
    elif isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):
        why = f"not allowed in: {exc}"
    elif isinstance(exc, asyncpg.TooManyConnectionsError):
        why = "the server has too many connections"
    else:
        why = str(exc) or type(exc).__name__
    return StoreOpenError(f"cannot connect to PostgreSQL at {target.where}: {why}")


def store_error(target: PgTarget, exc: BaseException, committing: bool = False) -> StoreError:
    """Turn an asyncpg error met during work into a StoreError saying what happened."""
    if is_connection_lost(exc):
        outcome = (
            "; the last transaction may or may not have been committed"
            if committing
            else "; the transaction was rolled back"
        )
        return StoreError(f"lost the connection to PostgreSQL at {target.where}: {exc}{outcome}")
    if isinstance(exc, asyncpg.LockNotAvailableError):
        return StoreError(
            f"the store stayed locked by another transaction (lock_timeout reached): {exc}"
        )
    if isinstance(exc, asyncpg.DiskFullError):
        return StoreError(f"the store is full (the PostgreSQL server is out of disk): {exc}")
    if isinstance(exc, asyncpg.ReadOnlySQLTransactionError):
        return StoreError(f"the PostgreSQL server is read-only (a standby?): {exc}")
    if isinstance(exc, asyncpg.InsufficientPrivilegeError):
        return StoreError(f"PostgreSQL refused: {exc} (check the user's privileges)")
    if isinstance(exc, asyncpg.PostgresError):
        return StoreError(f"PostgreSQL error {exc.sqlstate}: {exc}")
    return StoreError(f"PostgreSQL client error: {exc}")


class AmbiguousCommit(StoreError):
    """The connection was lost while committing: the outcome is unknown."""

    def __init__(self, message: str, at: float) -> None:
        super().__init__(message)
        self.at = at


# -- one transaction ---------------------------------------------------------------

FLUSH = f"""
WITH d (queue, state, n) AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]) ORDER BY 1, 2
),
up AS (
    INSERT INTO task_counts AS c (queue, state, shard, n)
    SELECT queue, state, pg_backend_pid() % {COUNT_SHARDS}, n FROM d
    ON CONFLICT (queue, state, shard) DO UPDATE SET n = c.n + excluded.n
),
nt AS (SELECT pg_notify($4, $5) WHERE $5 <> '')
SELECT 'c', queue, state, sum(n)::bigint FROM (
    SELECT queue, state, n FROM task_counts UNION ALL SELECT queue, state, n FROM d
) a GROUP BY queue, state HAVING sum(n) <> 0
UNION ALL SELECT 'p', name, '', 0 FROM queues WHERE paused
UNION ALL SELECT 'a', value, '', 0 FROM taskdeck_meta WHERE key = 'paused_all'
UNION ALL SELECT 'n', '', '', count(*) FROM nt
"""


def counted(source: str, old: str | None, new: str) -> str:
    """CTEs that add a statement's own count changes to ``task_counts``: each row of
    ``source`` (with a ``queue`` column) moved one task from state ``old`` (None: a
    new task) to ``new`` (SQL expressions). For statements run alone (see :class:`Txn`)."""
    left = "" if old is None else f"SELECT queue, {old}, -1 FROM {source} UNION ALL "
    return (
        f"moves (queue, state, n) AS ({left}SELECT queue, {new}, 1 FROM {source}), "
        "counted AS (INSERT INTO task_counts AS c (queue, state, shard, n) "
        f"SELECT queue, state, pg_backend_pid() % {COUNT_SHARDS}, sum(n) FROM moves "
        "GROUP BY queue, state HAVING sum(n) <> 0 ORDER BY 1, 2 "
        "ON CONFLICT (queue, state, shard) DO UPDATE SET n = c.n + excluded.n)"
    )


READ_COUNTS = """
SELECT 'c', queue, state, sum(n)::bigint FROM task_counts GROUP BY queue, state
HAVING sum(n) <> 0
UNION ALL SELECT 'p', name, '', 0 FROM queues WHERE paused
UNION ALL SELECT 'a', value, '', 0 FROM taskdeck_meta WHERE key = 'paused_all'
"""


def counts_from_rows(rows: Sequence[Any]) -> StoreCounts:
    by_queue: dict[str, dict[TaskState, int]] = {}
    paused: set[str] = set()
    everything = None
    for kind, queue, state, n in rows:
        if kind == "c":
            by_queue.setdefault(queue, dict.fromkeys(TaskState, 0))[TaskState(state)] = int(n)
        elif kind == "p":
            paused.add(queue)
        elif kind == "a":  # everything paused: the value is who, when and why
            everything = AllPaused.from_json(queue)
    return StoreCounts(by_queue, frozenset(paused), everything)


@dataclass(eq=False)
class Txn:
    """One open write transaction on ``conn``, and what it changed.

    ``moved`` records count changes (and, for tasks that became queued, the queue
    to wake other nodes for); ``refresh_counts`` asks :meth:`finish` to read the
    counts even when no count changed (pausing a queue).

    ``alone``: there is no BEGIN/COMMIT; the operation runs one statement, which is
    its own transaction and writes its own count changes (:func:`counted`), so the
    hot paths (claim, complete, a plain enqueue) take one round trip instead of four.
    ``moved`` then only keeps this node's counts current; a statement that makes
    tasks ``queued`` sends the wake-up itself (``pg_notify`` with :meth:`wake_payload`).
    """

    conn: Any  # an asyncpg connection (or pool proxy)
    now: float
    token: str
    channel: str
    fault: Callable[[str], None] = no_fault
    alone: bool = False
    refresh_counts: bool = False
    woken: set[str] = field(default_factory=set)
    deltas: defaultdict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))

    def moved(self, queue: str, old: str, new: str, n: int = 1) -> None:
        """``n`` tasks of ``queue`` went from ``old`` to ``new`` ("" = none)."""
        if old:
            self.deltas[(queue, str(old))] -= n
        if new:
            self.deltas[(queue, str(new))] += n
            if new == TaskState.QUEUED:
                self.woken.add(queue)

    def wake(self, queue: str) -> None:
        self.woken.add(queue)

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        rows: list[Any] = await self.conn.fetch(sql, *args)
        return rows

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        return await self.conn.fetchrow(sql, *args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return await self.conn.fetchval(sql, *args)

    async def execute(self, sql: str, *args: Any) -> int:
        """Run a statement; returns the number of rows it touched."""
        status: str = await self.conn.execute(sql, *args)
        tail = status.rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else 0

    async def finish(self) -> StoreCounts | None:
        """Write the count changes and the wake-up; returns every count as this
        transaction sees them (None when nothing asked for them)."""
        deltas = {key: n for key, n in self.deltas.items() if n}
        if not deltas and not self.woken and not self.refresh_counts:
            return None
        rows = await self.conn.fetch(
            FLUSH,
            [q for q, _ in deltas],
            [s for _, s in deltas],
            list(deltas.values()),
            self.channel,
            self.wake_payload(),
        )
        return counts_from_rows(rows)

    def wake_payload(self) -> str:
        """The wake-up for the queues made ready so far ("" for none): this store's
        token (so it ignores its own) and the queue names."""
        if not self.woken:
            return ""
        payload = self.token + ":" + json.dumps(sorted(self.woken))
        if len(payload) > 7000:  # NOTIFY payloads must stay under 8000 bytes
            payload = self.token + ":*"
        return payload
