"""SQLite schema, migrations, and the checks made before a file is ever written.

A Taskdeck store is marked with ``PRAGMA application_id`` and versioned with
``PRAGMA user_version``. :func:`inspect_file` looks at a path through a read-only
connection first, so a file that is not ours (a text file, another program's
database, a newer schema) is refused with a specific message and left untouched.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.errors import StoreOpenError
from engine.faults import no_fault
from engine.model import TERMINAL_STATES, TaskState, transition_check_sql

APPLICATION_ID = 0x54534B44  # "TSKD"
SCHEMA_VERSION = 4
MIN_SQLITE = (3, 38, 0)  # RETURNING (3.35), the ->> operator (3.38)

_STATES = ", ".join(f"'{s.value}'" for s in TaskState)
_TERMINAL = ", ".join(f"'{s.value}'" for s in sorted(TERMINAL_STATES))

_V1 = f"""
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE tasks (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    handler          TEXT    NOT NULL,
    queue            TEXT    NOT NULL,
    priority         INTEGER NOT NULL CHECK (priority BETWEEN 0 AND 9),
    state            TEXT    NOT NULL CHECK (state IN ({_STATES})),
    prev_state       TEXT    NOT NULL DEFAULT '',
    attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_retries      INTEGER NOT NULL CHECK (max_retries >= 0),
    retries          INTEGER NOT NULL CHECK (retries >= 0),
    payload          TEXT    NOT NULL,
    result           TEXT,
    error            TEXT,
    progress         REAL,
    progress_message TEXT,
    created_at       REAL    NOT NULL,
    run_at           REAL,
    started_at       REAL,
    finished_at      REAL,
    worker           TEXT,
    lease_owner      TEXT,
    lease_expires_at REAL,
    timeline         TEXT    NOT NULL DEFAULT '',
    -- every state change must be an allowed transition (see engine/model.py)
    CHECK ({transition_check_sql()}),
    CHECK ((state IN ({_TERMINAL})) = (finished_at IS NOT NULL)),
    CHECK ((state = 'running') = (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL)),
    CHECK (state != 'scheduled' OR run_at IS NOT NULL)
);

-- claim: highest priority first, FIFO (id) within a priority, per queue
CREATE INDEX tasks_ready    ON tasks(queue, priority DESC, id) WHERE state = 'queued';
-- promote scheduled tasks when due
CREATE INDEX tasks_due      ON tasks(run_at)                  WHERE state = 'scheduled';
-- expired leases (rescue) and lease renewal scan only the running set
CREATE INDEX tasks_running  ON tasks(lease_expires_at)        WHERE state = 'running';
-- finished tasks, newest first, and result-TTL cleanup
CREATE INDEX tasks_finished ON tasks(state, finished_at)      WHERE finished_at IS NOT NULL;

CREATE TABLE task_counts (
    queue TEXT    NOT NULL,
    state TEXT    NOT NULL,
    n     INTEGER NOT NULL,
    PRIMARY KEY (queue, state)
) WITHOUT ROWID;

CREATE TABLE queues (
    name       TEXT PRIMARY KEY,
    paused     INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),
    changed_at REAL
) WITHOUT ROWID;
"""

_ACTIVE = "'queued', 'scheduled', 'running'"
_V1_COLUMNS = (
    "id, handler, queue, priority, state, prev_state, attempts, max_retries, retries, "
    "payload, result, error, progress, progress_message, created_at, run_at, started_at, "
    "finished_at, worker, lease_owner, lease_expires_at, timeline"
)

# Version 2: unique tasks, workflows, completion webhooks, periodic schedules and flow
# control. The tasks table is rebuilt (SQLite cannot change a CHECK in place) because a
# workflow step may now move cancelled → scheduled: it waits again when the step that
# stopped its workflow is retried. The id sequence is carried over, so no id is reused.
_V2 = f"""
CREATE TABLE tasks_v2 (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    handler          TEXT    NOT NULL,
    queue            TEXT    NOT NULL,
    priority         INTEGER NOT NULL CHECK (priority BETWEEN 0 AND 9),
    state            TEXT    NOT NULL CHECK (state IN ({_STATES})),
    prev_state       TEXT    NOT NULL DEFAULT '',
    attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_retries      INTEGER NOT NULL CHECK (max_retries >= 0),
    retries          INTEGER NOT NULL CHECK (retries >= 0),
    payload          TEXT    NOT NULL,
    result           TEXT,
    error            TEXT,
    progress         REAL,
    progress_message TEXT,
    created_at       REAL    NOT NULL,
    run_at           REAL,
    started_at       REAL,
    finished_at      REAL,
    worker           TEXT,
    lease_owner      TEXT,
    lease_expires_at REAL,
    timeline         TEXT    NOT NULL DEFAULT '',
    unique_key       TEXT,
    webhook          TEXT,
    workflow_id      INTEGER,
    step             INTEGER,
    -- how a workflow step takes the previous result: a parameter name, or '' to merge
    receives         TEXT,
    -- 1 while a workflow step waits for earlier steps (scheduled; or cancelled when its
    -- workflow stopped, until the step that stopped it is retried)
    waiting          INTEGER NOT NULL DEFAULT 0 CHECK (waiting IN (0, 1)),
    -- every state change must be an allowed transition (see engine/model.py)
    CHECK ({transition_check_sql()}),
    CHECK ((state IN ({_TERMINAL})) = (finished_at IS NOT NULL)),
    CHECK ((state = 'running') = (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL)),
    CHECK (state != 'scheduled' OR run_at IS NOT NULL)
);
INSERT INTO tasks_v2 ({_V1_COLUMNS}) SELECT {_V1_COLUMNS} FROM tasks;
DELETE FROM sqlite_sequence WHERE name = 'tasks_v2';
INSERT INTO sqlite_sequence (name, seq) SELECT 'tasks_v2', seq FROM sqlite_sequence
    WHERE name = 'tasks';
DROP TABLE tasks;
ALTER TABLE tasks_v2 RENAME TO tasks;

CREATE INDEX tasks_ready    ON tasks(queue, priority DESC, id) WHERE state = 'queued';
CREATE INDEX tasks_due      ON tasks(run_at)                  WHERE state = 'scheduled';
CREATE INDEX tasks_running  ON tasks(lease_expires_at)        WHERE state = 'running';
CREATE INDEX tasks_finished ON tasks(state, finished_at)      WHERE finished_at IS NOT NULL;
-- at most one active task per unique key: the index is the check, so no race
CREATE UNIQUE INDEX tasks_unique ON tasks(unique_key)
    WHERE unique_key IS NOT NULL AND state IN ({_ACTIVE});
CREATE INDEX tasks_workflow ON tasks(workflow_id, step) WHERE workflow_id IS NOT NULL;

CREATE TABLE workflows (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT    NOT NULL CHECK (kind IN ('chain', 'group')),
    steps      INTEGER NOT NULL CHECK (steps > 0),
    created_at REAL    NOT NULL
);

CREATE TABLE schedules (
    name       TEXT    PRIMARY KEY,
    handler    TEXT    NOT NULL,
    payload    TEXT    NOT NULL,
    queue      TEXT    NOT NULL,
    priority   INTEGER NOT NULL CHECK (priority BETWEEN 0 AND 9),
    retries    INTEGER NOT NULL CHECK (retries >= 0),
    every      REAL    CHECK (every > 0),
    cron       TEXT,
    tz         TEXT    NOT NULL DEFAULT 'UTC',
    next_run   REAL    NOT NULL,
    last_run   REAL,
    last_task  INTEGER,
    paused     INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),
    updated_at REAL    NOT NULL,
    CHECK ((every IS NULL) != (cron IS NULL))
) WITHOUT ROWID;

-- token buckets of the rate limits, shared by every process on the store
CREATE TABLE rate_buckets (
    key        TEXT PRIMARY KEY,
    tokens     REAL NOT NULL,
    updated_at REAL NOT NULL
) WITHOUT ROWID;

-- weighted fair share between queues: each queue's virtual time of service
ALTER TABLE queues ADD COLUMN served REAL NOT NULL DEFAULT 0
"""

# Version 3: the cluster. Every engine process is a node with a heartbeat row; the
# commands table carries operator commands to one node or all ('*'), and each node
# records its outcome in command_results.
_V3 = """
CREATE TABLE nodes (
    id         TEXT PRIMARY KEY,
    host       TEXT NOT NULL,
    pid        INTEGER NOT NULL,
    version    TEXT NOT NULL,
    started_at REAL NOT NULL,
    last_seen  REAL NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('alive', 'stopped', 'dead')),
    workers    INTEGER NOT NULL,
    busy       INTEGER NOT NULL,
    snapshot   TEXT NOT NULL DEFAULT '{}'
) WITHOUT ROWID;

CREATE TABLE commands (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    target     TEXT NOT NULL,
    action     TEXT NOT NULL,
    args       TEXT NOT NULL,
    created_at REAL NOT NULL,
    by         TEXT NOT NULL
);
CREATE INDEX commands_recent ON commands(created_at);

CREATE TABLE command_results (
    command_id INTEGER NOT NULL,
    node       TEXT    NOT NULL,
    done_at    REAL    NOT NULL,
    ok         INTEGER NOT NULL CHECK (ok IN (0, 1)),
    outcome    TEXT    NOT NULL,
    PRIMARY KEY (command_id, node)
) WITHOUT ROWID
"""

# Version 4: each node says which handlers it runs (a JSON list; NULL: a node of an
# older version, whose handlers are unknown).
_V4 = "ALTER TABLE nodes ADD COLUMN handlers TEXT"

#: (version, script) pairs, applied in order inside one transaction each.
MIGRATIONS: tuple[tuple[int, str], ...] = ((1, _V1), (2, _V2), (3, _V3), (4, _V4))


@dataclass(frozen=True)
class FileInfo:
    """What :func:`inspect_file` learned without writing anything."""

    path: Path
    is_new: bool
    version: int
    key_check: str | None


def check_sqlite_version() -> None:
    if sqlite3.sqlite_version_info < MIN_SQLITE:
        need = ".".join(map(str, MIN_SQLITE))
        raise StoreOpenError(
            f"this Python links SQLite {sqlite3.sqlite_version}; Taskdeck needs {need} or newer"
        )


def _refuse(path: Path, why: str) -> StoreOpenError:
    return StoreOpenError(
        f"cannot use {path} as a Taskdeck store: {why} (the file was not touched)"
    )


def inspect_file(path: Path) -> FileInfo:
    """Decide whether ``path`` is a new store, our store, or something to refuse."""
    check_sqlite_version()
    parent = path.parent
    if not parent.exists():
        raise StoreOpenError(
            f"cannot create a store at {path}: the directory {parent} does not exist"
        )
    if not parent.is_dir():
        raise StoreOpenError(f"cannot create a store at {path}: {parent} is not a directory")
    if path.is_dir():
        raise StoreOpenError(
            f"cannot use {path} as a store: it is a directory, not a database file"
        )
    if path.exists() and not path.is_file():
        raise _refuse(path, "it is not a regular file")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise StoreOpenError(
            f"cannot use {path}: the directory {parent} is not writable "
            "(SQLite needs to create its -wal and -shm files there)"
        )
    if not path.exists() or path.stat().st_size == 0:
        return FileInfo(path, True, 0, None)
    if not os.access(path, os.R_OK | os.W_OK):
        raise _refuse(path, "it is read-only for this user; Taskdeck needs read and write access")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise _refuse(path, f"it cannot be opened ({exc})") from None
    try:
        # One read transaction, so every answer comes from the same snapshot: another
        # process may be creating the store right now (its tables and its id commit
        # together; read apart, the tables could be seen without the id).
        conn.execute("BEGIN")
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        key_check = None
        if app_id == APPLICATION_ID and "meta" in tables:
            row = conn.execute("SELECT value FROM meta WHERE key='key_check'").fetchone()
            key_check = row[0] if row else None
        conn.execute("COMMIT")
    except sqlite3.DatabaseError as exc:
        message = str(exc)
        if "not a database" in message:
            raise _refuse(path, "it is not an SQLite database") from None
        raise _refuse(path, f"SQLite reports: {message}") from None
    finally:
        conn.close()
    if app_id != APPLICATION_ID:
        if not tables:
            return FileInfo(path, True, 0, None)
        shown = ", ".join(sorted(tables)[:6]) + (" …" if len(tables) > 6 else "")
        raise _refuse(path, f"it is an SQLite database of another program (tables: {shown})")
    if version > SCHEMA_VERSION:
        raise _refuse(
            path,
            f"it was created by a newer Taskdeck (schema {version} > {SCHEMA_VERSION}); "
            "upgrade Taskdeck to open it",
        )
    return FileInfo(path, False, version, key_check)


def create_private_file(path: Path) -> None:
    """Create an empty database file readable by its owner only (mode 0600)."""
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, stat.S_IRUSR | stat.S_IWUSR)
    os.close(fd)


def migrate(
    conn: sqlite3.Connection, from_version: int, fault: Callable[[str], None] = no_fault
) -> int:
    """Apply the missing migrations, each in its own transaction; returns the version."""
    version = from_version
    for target, script in MIGRATIONS:
        if target <= version:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have migrated while we waited for the lock.
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if target <= version:
                conn.execute("COMMIT")
                continue
            statements = [st for st in script.split(";\n") if st.strip()]
            for index, statement in enumerate(statements):
                if index == len(statements) // 2:
                    fault("schema.migrate.mid")
                conn.execute(statement)
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {target}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        version = target
    return version
