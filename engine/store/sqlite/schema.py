"""SQLite schema and migrations.

A Taskdeck store is marked with ``PRAGMA application_id`` and versioned with
``PRAGMA user_version``. :func:`engine.store.sqlite.file.inspect_file` looks at a path
first, so a file that is not ours (a text file, another program's database, a newer
schema) is refused with a specific message and left untouched.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from collections.abc import Callable
from pathlib import Path

from engine.faults import no_fault
from engine.model import TERMINAL_STATES, TaskState, transition_check_sql

APPLICATION_ID = 0x54534B44  # "TSKD"
SCHEMA_VERSION = 12

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

# Version 5: settings changed at runtime, kept for every node and every restart (the
# value as JSON; who changed it and when).
_V5 = """
CREATE TABLE saved_settings (
    name       TEXT    PRIMARY KEY,
    value      TEXT    NOT NULL,
    changed_at REAL    NOT NULL,
    changed_by TEXT    NOT NULL,
    pid        INTEGER NOT NULL,
    interface  TEXT    NOT NULL
) WITHOUT ROWID
"""

# Version 6: alerts (see engine.alerts): one row per alert (a rule for one scope
# key), the history of its transitions and deliveries, silences per rule, and the
# lease row that names the one node evaluating the rules.
_V6 = """
CREATE TABLE alerts (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    rule          TEXT    NOT NULL,
    key           TEXT    NOT NULL,
    state         TEXT    NOT NULL CHECK (state IN ('pending', 'firing', 'resolved', 'cleared')),
    severity      TEXT    NOT NULL,
    since         REAL    NOT NULL,
    started_at    REAL    NOT NULL,
    clear_since   REAL,
    last_notified REAL,
    notified      INTEGER NOT NULL DEFAULT 0,
    acked_by      TEXT,
    acked_at      REAL,
    note          TEXT    NOT NULL DEFAULT '',
    value         REAL,
    summary       TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX alerts_open ON alerts(state, rule, key);
CREATE INDEX alerts_since ON alerts(since);

CREATE TABLE alert_events (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id INTEGER,
    at       REAL    NOT NULL,
    kind     TEXT    NOT NULL,
    channel  TEXT,
    task_id  INTEGER,
    detail   TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX alert_events_alert ON alert_events(alert_id, id);
CREATE INDEX alert_events_at ON alert_events(at);

CREATE TABLE alert_silences (
    rule  TEXT PRIMARY KEY,
    until REAL NOT NULL,
    note  TEXT NOT NULL,
    by    TEXT NOT NULL,
    at    REAL NOT NULL
) WITHOUT ROWID;

CREATE TABLE alert_leader (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    node       TEXT NOT NULL,
    expires_at REAL NOT NULL
);
INSERT INTO alert_leader (id, node, expires_at) VALUES (1, '', 0)
"""

# Version 7: the audit trail (see engine.audit): one row per operator action, with
# who (OS user, host, process id, interface), what, on what, how it ended and a note.
_V7 = """
CREATE TABLE audit (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    at        REAL    NOT NULL,
    os_user   TEXT    NOT NULL,
    host      TEXT    NOT NULL,
    pid       INTEGER NOT NULL,
    interface TEXT    NOT NULL,
    action    TEXT    NOT NULL,
    target    TEXT    NOT NULL,
    outcome   TEXT    NOT NULL,
    ok        INTEGER NOT NULL,
    note      TEXT,
    task_id   INTEGER
);
CREATE INDEX audit_at ON audit(at);
CREATE INDEX audit_task ON audit(task_id, id) WHERE task_id IS NOT NULL
"""

# Version 8: queued tasks of one handler in claim order, so
# a query by handler and state (``handler=x state=queued``) reads its first page from
# one index range instead of walking every queue's whole range.
# IF NOT EXISTS: a store taken back to an older version (tests do) keeps its indexes.
_V8 = """
CREATE INDEX IF NOT EXISTS tasks_handler_ready ON tasks(handler, priority DESC, id)
    WHERE state = 'queued'
"""

# Version 9: bulk operations (see engine.ops): one row per operation, its selection
# as text (JSON), its progress and result; tasks are changed in batches.
_V9 = """
CREATE TABLE IF NOT EXISTS operations (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    action          TEXT    NOT NULL,
    args            TEXT    NOT NULL,
    selection       TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    total           INTEGER NOT NULL,
    done            INTEGER NOT NULL,
    changed         INTEGER NOT NULL,
    skipped         INTEGER NOT NULL,
    reasons         TEXT    NOT NULL,
    cursor          INTEGER NOT NULL,
    max_id          INTEGER NOT NULL,
    owner           TEXT    NOT NULL,
    actor           TEXT    NOT NULL,
    note            TEXT,
    error           TEXT,
    created_at      REAL    NOT NULL,
    started_at      REAL,
    finished_at     REAL,
    beat_at         REAL    NOT NULL,
    abort_requested INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS operations_open ON operations(state)
    WHERE state IN ('pending', 'running')
"""

# Version 10: task logs (see engine.tasklog): a task's lines in order, deleted with it.
_V10 = """
CREATE TABLE IF NOT EXISTS task_logs (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    at      REAL    NOT NULL,
    level   TEXT    NOT NULL,
    logger  TEXT    NOT NULL,
    message TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS task_logs_task ON task_logs(task_id, id);
CREATE TRIGGER IF NOT EXISTS task_logs_gone AFTER DELETE ON tasks
    BEGIN DELETE FROM task_logs WHERE task_id = OLD.id; END
"""

# Version 11: the W3C trace context of the enqueue that made a task (see engine.tracing),
# continued by each attempt; NULL when OpenTelemetry was not in use.
_V11 = """
ALTER TABLE tasks ADD COLUMN trace_context TEXT
"""

#: (version, script) pairs, applied in order inside one transaction each.
# Version 12: metrics history (see engine.history): per minute, hour and day, per
# handler and queue; how far roll-ups have got; named leader leases.
_V12 = """
CREATE TABLE history (
    step      INTEGER NOT NULL CHECK (step IN (60, 3600, 86400)),
    t         INTEGER NOT NULL,
    handler   TEXT    NOT NULL,
    queue     TEXT    NOT NULL,
    runs      INTEGER NOT NULL DEFAULT 0,
    successes INTEGER NOT NULL DEFAULT 0,
    failures  INTEGER NOT NULL DEFAULT 0,
    retries   INTEGER NOT NULL DEFAULT 0,
    timeouts  INTEGER NOT NULL DEFAULT 0,
    run_sum   REAL    NOT NULL DEFAULT 0,
    run_hist  TEXT    NOT NULL DEFAULT '',
    wait_hist TEXT    NOT NULL DEFAULT '',
    backlog   INTEGER,
    PRIMARY KEY (step, t, handler, queue)
) WITHOUT ROWID;
CREATE TABLE history_marks (
    step INTEGER PRIMARY KEY,
    upto INTEGER NOT NULL
);
INSERT INTO history_marks (step, upto) VALUES (3600, 0), (86400, 0);
CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    node       TEXT NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
INSERT INTO leases (name, node, expires_at) VALUES ('history', '', 0)
"""

MIGRATIONS: tuple[tuple[int, str], ...] = (
    (1, _V1), (2, _V2), (3, _V3), (4, _V4), (5, _V5), (6, _V6), (7, _V7), (8, _V8), (9, _V9),
    (10, _V10), (11, _V11), (12, _V12),
)  # fmt: skip


def create_private_file(path: Path) -> None:
    """Create an empty database file readable by its owner only (mode 0600)."""
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, stat.S_IRUSR | stat.S_IWUSR)
    os.close(fd)


def migrate(
    conn: sqlite3.Connection,
    from_version: int,
    fault: Callable[[str], None] = no_fault,
    deadline: float | None = None,
    check: Callable[[sqlite3.Connection], None] | None = None,
) -> int:
    """Apply the missing migrations, each in its own transaction; returns the version.

    ``deadline`` (``time.monotonic()``): every wait for the write lock ends then, all
    migrations together (SQLite's busy error is raised). ``check(conn)`` runs inside
    each transaction before anything is written, and may refuse the file by raising."""
    version = from_version
    for target, script in MIGRATIONS:
        if target <= version:
            continue
        if deadline is not None:
            left = max(0, int((deadline - time.monotonic()) * 1000))
            conn.execute(f"PRAGMA busy_timeout = {left}")
        conn.execute("BEGIN IMMEDIATE")
        try:
            if check is not None:
                check(conn)  # it may have changed since it was inspected
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


def current_shape() -> dict[str, frozenset[str]]:
    """Every table of this version's schema and its columns (made in memory)."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        for _, script in MIGRATIONS:
            for statement in (st for st in script.split(";\n") if st.strip()):
                conn.execute(statement)
        return shape_of(conn)
    finally:
        conn.close()


def shape_of(conn: sqlite3.Connection) -> dict[str, frozenset[str]]:
    """The tables of the database on ``conn`` and their columns."""
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {
        t: frozenset(r[1] for r in conn.execute(f"PRAGMA table_info({quote_name(t)})"))
        for t in tables
    }


def quote_name(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
