"""Runtime settings saved in the PostgreSQL store (see :mod:`engine.saved_settings`);
the same table and behaviour as :mod:`engine.store.sqlite.settings`: a change and the
command that tells every node about it are one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engine.model import SavedSetting
from engine.store.postgres import cluster

#: Version 4 of the PostgreSQL schema (see engine.store.postgres.schema.MIGRATIONS).
SAVED_SETTINGS_DDL = """
CREATE TABLE saved_settings (
    name       text    PRIMARY KEY,
    value      text    NOT NULL,
    changed_at double precision NOT NULL,
    changed_by text    NOT NULL,
    pid        integer NOT NULL,
    interface  text    NOT NULL
)
"""

SAVE = (
    "INSERT INTO saved_settings (name, value, changed_at, changed_by, pid, interface) "
    "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO UPDATE SET value = excluded.value, "
    "changed_at = excluded.changed_at, changed_by = excluded.changed_by, "
    "pid = excluded.pid, interface = excluded.interface"
)
SAVED = (
    "SELECT name, value, changed_at, changed_by, pid, interface FROM saved_settings ORDER BY name"
)


async def save(
    conn: Any,
    saved: Sequence[SavedSetting],
    removed: Sequence[str],
    command: tuple[str, str, str],
    now: float,
) -> int:
    """Save ``saved``, delete ``removed`` and send ``command`` (action, JSON args,
    by) to every node, in one transaction; returns the command's id."""
    action, args, by = command
    async with conn.transaction():
        for row in saved:
            await conn.execute(
                SAVE, row.name, row.value, row.changed_at, row.changed_by, row.pid, row.interface
            )
        if removed:
            await conn.execute("DELETE FROM saved_settings WHERE name = ANY($1)", list(removed))
        return await cluster.send_command(conn, "*", action, args, by, now)


def saved_setting(row: Any) -> SavedSetting:
    return SavedSetting(row[0], row[1], row[2], row[3], row[4], row[5])
