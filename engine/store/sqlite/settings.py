"""Runtime settings saved in the SQLite store (see :mod:`engine.saved_settings`).

A change and the command that tells every node about it are one transaction: a node
either sees both (the command, then the row at its next start) or neither.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from engine.model import SavedSetting
from engine.store.sqlite import cluster
from engine.store.sqlite.txn import Txn

SAVE = (
    "INSERT INTO saved_settings (name, value, changed_at, changed_by, pid, interface) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value, "
    "changed_at = excluded.changed_at, changed_by = excluded.changed_by, "
    "pid = excluded.pid, interface = excluded.interface"
)
SAVED = (
    "SELECT name, value, changed_at, changed_by, pid, interface FROM saved_settings ORDER BY name"
)


def save(
    txn: Txn,
    saved: Sequence[SavedSetting],
    removed: Sequence[str],
    command: tuple[str, str, str],
) -> int:
    """Save ``saved``, delete ``removed`` and send ``command`` (action, JSON args,
    by) to every node; returns the command's id."""
    for row in saved:
        txn.execute(
            SAVE, (row.name, row.value, row.changed_at, row.changed_by, row.pid, row.interface)
        )
    for name in removed:
        txn.execute("DELETE FROM saved_settings WHERE name = ?", (name,))
    action, args, by = command
    return cluster.send_command(txn, "*", action, args, by)


def saved(conn: sqlite3.Connection) -> list[SavedSetting]:
    """Every saved setting (on the writer's connection, between batches)."""
    return [SavedSetting(*row) for row in conn.execute(SAVED)]
