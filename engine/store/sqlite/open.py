"""Opening an SQLite store's connections.

- The writer (:func:`connect_writer`, :func:`prepare_writer`): WAL mode and the
  migrations, every wait for another process's lock within one deadline
  (``lock_timeout`` from the start of the open), then one clear "locked" error.
- The reader (:func:`connect_reader`): ``mode=ro`` for a read-only open (nothing is
  written, no lock is ever waited for: WAL readers do not wait for writers), on a
  daemon thread so that an engine nobody stopped cannot keep the interpreter alive.
- A read-only open of a store no process has open must let SQLite create ``-wal`` and
  ``-shm`` to read it; :func:`tidy_sidecars` lets SQLite remove them again afterwards
  (only if the ``-wal`` is empty and no other process opened the store meanwhile).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import aiosqlite

from engine.codec import Codec
from engine.errors import EncryptionKeyError, StoreOpenError
from engine.faults import no_fault
from engine.model import AllPaused, TaskState
from engine.store.base import StoreCounts
from engine.store.sqlite.file import FileInfo, foreign_marks, refuse, sidecars, uri
from engine.store.sqlite.schema import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    create_private_file,
    current_shape,
    migrate,
    quote_name,
)
from engine.store.sqlite.txn import is_busy, locked

COUNTS = "SELECT queue, state, n FROM task_counts WHERE n != 0"
#: The paused queues (name, NULL) and, if everything is paused, (NULL, who/when/why).
PAUSED = (
    "SELECT name, NULL FROM queues WHERE paused = 1 "
    "UNION ALL SELECT NULL, value FROM meta WHERE key = 'paused_all'"
)


def counts_from(rows: Any, paused: Any) -> StoreCounts:
    by_queue: dict[str, dict[TaskState, int]] = {}
    for queue, state, n in rows:
        by_queue.setdefault(queue, dict.fromkeys(TaskState, 0))[TaskState(state)] = n
    queues, everything = set(), None
    for name, value in paused:
        if name is None:
            everything = AllPaused.from_json(value)
        else:
            queues.add(name)
    return StoreCounts(by_queue, frozenset(queues), everything)


def read_counts(conn: sqlite3.Connection) -> StoreCounts:
    return counts_from(conn.execute(COUNTS), conn.execute(PAUSED))


async def read_counts_with(read: Callable[[str], Awaitable[list[Any]]]) -> StoreCounts:
    """The counts through an async reader (a read-only store has no writer)."""
    return counts_from(await read(COUNTS), await read(PAUSED))


def prepare_writer(
    conn: sqlite3.Connection,
    info: FileInfo,
    deadline: float,
    lock_timeout: float,
    fault: Callable[[str], None] = no_fault,
) -> None:
    """Put the writer connection's file in WAL mode and migrate it; every wait for
    another process's lock ends at one ``deadline`` (``time.monotonic()``), the open's
    start + ``lock_timeout``."""
    try:
        if info.is_new:
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        switch_to_wal(conn, info.path, deadline)
        migrate(conn, info.version, fault, deadline, partial(still_ours, path=info.path))
    except sqlite3.OperationalError as exc:
        if is_busy(exc):
            raise locked(info.path, lock_timeout) from None
        raise


def still_ours(conn: sqlite3.Connection, path: Path) -> None:
    """Inside the migration's transaction: refuse a file another program wrote to since
    it was inspected (its marks are read again under the write lock)."""
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    if app_id == APPLICATION_ID:
        return
    objects = [(r[0], r[1]) for r in conn.execute("SELECT type, name FROM sqlite_master")]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    foreign = foreign_marks(objects, app_id, version)
    if foreign is not None:
        raise refuse(path, f"it is an SQLite database of another program ({foreign})")


def switch_to_wal(conn: sqlite3.Connection, path: Path, deadline: float) -> None:
    """Put the file in WAL mode. Switching needs the file to itself, and SQLite may
    refuse at once (no busy wait) while another process opens or creates the same
    store, so a refusal is retried until ``deadline`` (``time.monotonic()``)."""
    delay = 0.005
    while True:
        left = max(0.0, deadline - time.monotonic())
        conn.execute(f"PRAGMA busy_timeout = {int(left * 1000)}")
        try:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(min(delay, left))  # on the writer thread, before it serves anything
            delay = min(0.1, delay * 2)
            continue
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"cannot switch {path} to WAL (got {mode})")
        return


async def connect_reader(path: Path, read_only: bool) -> aiosqlite.Connection:
    """The reading connection: ``mode=ro`` for a read-only open, else a read-write
    connection kept ``query_only`` (so that, closing last, it tidies the WAL files)."""
    pending = aiosqlite.connect(
        uri(path, "mode=ro" if read_only else "mode=rw"), uri=True, isolation_level=None
    )
    # aiosqlite's thread is not a daemon: an engine nobody stops would keep the
    # interpreter from exiting. It holds no work of ours that exit could lose.
    thread = getattr(pending, "_thread", None)
    if isinstance(thread, threading.Thread) and not thread.is_alive():
        thread.daemon = True
    reader = await pending
    try:
        if not read_only:
            await reader.execute("PRAGMA query_only = 1")
    except BaseException:
        await reader.close()
        raise
    return reader


async def check_readable(read: Callable[[str], Awaitable[list[Any]]], info: FileInfo) -> None:
    """A read-only open never migrates: a store written by an older schema is read
    only if it already has every table and column this version has."""
    if info.version >= SCHEMA_VERSION:
        return
    have: dict[str, frozenset[str]] = {}
    for (table,) in await read("SELECT name FROM sqlite_master WHERE type = 'table'"):
        rows = await read(f"PRAGMA table_info({quote_name(table)})")
        have[table] = frozenset(r[1] for r in rows)
    missing = sorted(
        f"{table}.{column}" if table in have else table
        for table, columns in current_shape().items()
        for column in (columns - have[table] if table in have else [""])
    )
    if missing:
        shown = ", ".join(missing[:4]) + (" …" if len(missing) > 4 else "")
        raise StoreOpenError(
            f"{info.path} was written by an older Taskdeck (schema {info.version}; this one "
            f"reads schema {SCHEMA_VERSION}, and it lacks {shown}); start an engine on it "
            "once to upgrade it (a read-only open never migrates)"
        )


def tidy_sidecars(path: Path, before: frozenset[str]) -> None:
    """After a read-only open: if it made ``-wal``/``-shm`` that were not there and the
    ``-wal`` is empty, a brief read-write connection closes last and SQLite removes
    them (it does not if another process has the store open). Nothing is written."""
    made = sidecars(path) - before
    wal = Path(f"{path}-wal")
    if not made or before & {"-wal", "-shm"} or (wal.exists() and wal.stat().st_size):
        return
    try:
        conn = sqlite3.connect(uri(path, "mode=rw"), uri=True, isolation_level=None)
    except sqlite3.Error:
        return
    try:
        conn.execute("PRAGMA busy_timeout = 0")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error:
        pass
    finally:
        conn.close()


def connect_writer(
    path: Path,
    info: FileInfo,
    deadline: float,
    lock_timeout: float,
    fault: Callable[[str], None],
    codec: Codec,
    ready: Callable[[sqlite3.Connection], None],
) -> sqlite3.Connection:
    """The writer's connection: the file created if new (private), migrated, in WAL
    mode, its key check stored; ``ready(conn)`` applies the runtime settings. A
    failure closes the connection."""
    if info.is_new:
        with contextlib.suppress(FileExistsError):  # another process was first
            create_private_file(path)
    conn = sqlite3.connect(
        uri(path, "mode=rw"),
        uri=True,
        isolation_level=None,
        check_same_thread=False,
        cached_statements=256,
    )
    try:
        prepare_writer(conn, info, deadline, lock_timeout, fault)
        token = codec.key_check_token()
        if token is not None and info.key_check is None:
            conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('key_check', ?)", (token,)
            )
            (stored,) = conn.execute("SELECT value FROM meta WHERE key = 'key_check'").fetchone()
            if not codec.keys_match(stored):
                raise EncryptionKeyError(
                    f"another process set a different encryption key on {path}"
                )
        ready(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def apply_pragmas(conn: sqlite3.Connection, durability: str) -> None:
    """The writer's runtime settings (``durability``: "full" or "normal")."""
    sync = "FULL" if durability == "full" else "NORMAL"
    conn.execute(f"PRAGMA synchronous = {sync}")
    # Writes do not use SQLite's busy handler (it sleeps at least 1 ms per
    # conflict, long next to a 0.1 ms transaction): run_batch retries a locked
    # BEGIN IMMEDIATE itself, starting at 50 µs, for up to lock_timeout.
    conn.execute("PRAGMA busy_timeout = 0")
