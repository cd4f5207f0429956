"""Opening a PostgreSQL store that must already exist (``Engine.client()``).

An open that may not create the store (``create=False``, or read-only) first looks
for Taskdeck's tables in the schema, so a mistyped URL or schema creates nothing. A
read-only open never migrates: it reads a store written by an older Taskdeck only
if every table this version reads is there already; its sessions run with
``default_transaction_read_only``, so the server refuses any write as well.
"""

from __future__ import annotations

from typing import Any

from engine.errors import StoreOpenError
from engine.store.base import OpenMode
from engine.store.postgres.conn import PgTarget, quote_ident
from engine.store.postgres.schema import OUR_TABLES, SCHEMA_VERSION


async def check_existing(conn: Any, target: PgTarget, mode: OpenMode) -> str | None:
    """Refuse a schema without a Taskdeck store (and, read-only, one that would need a
    migration); returns the stored key check of a read-only open."""
    schema = target.schema
    rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = $1", schema)
    tables = {r[0] for r in rows}
    if "taskdeck_meta" not in tables:
        raise StoreOpenError(
            f"no Taskdeck store in schema {schema!r} of database {target.database!r} at "
            f"{target.host}:{target.port}; check --store, or start an engine there first "
            "(taskdeck run --headless --store …)"
        )
    if not mode.read_only:
        return None
    meta = dict(
        await conn.fetch(
            f"SELECT key, value FROM {quote_ident(schema)}.taskdeck_meta "
            "WHERE key IN ('schema_version', 'key_check')"
        )
    )
    version = int(meta.get("schema_version") or 0)
    where = f"schema {schema!r} at {target.where}"
    if version > SCHEMA_VERSION:
        raise StoreOpenError(
            f"{where} was created by a newer Taskdeck (schema {version} > {SCHEMA_VERSION}); "
            "upgrade Taskdeck to open it"
        )
    missing = [t for t in OUR_TABLES if t not in tables]
    if missing:
        raise StoreOpenError(
            f"{where} was written by an older Taskdeck (schema {version}; it lacks "
            f"{', '.join(missing)}); start an engine on it once to upgrade it (a read-only "
            "open never migrates)"
        )
    key_check = meta.get("key_check")
    return None if key_check is None else str(key_check)
