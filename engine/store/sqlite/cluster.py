"""Node rows and the command channel in the SQLite store (see :mod:`engine.cluster`).

A node's heartbeat is one write transaction: it saves the node's row, marks nodes
that have been silent too long as dead, and reads the commands addressed to it (or
to every node) that it has not answered and that were sent after it started.
"""

from __future__ import annotations

import json

from engine.codec import Codec
from engine.model import CommandResult, NodeCommand, NodeInfo
from engine.store import rows
from engine.store.sqlite.txn import Txn

SAVE_NODE = (
    "INSERT INTO nodes (handlers, id, host, pid, version, started_at, last_seen, state, "
    "workers, busy, snapshot) VALUES (?, ?, ?, ?, ?, ?, ?, 'alive', ?, ?, ?) "
    "ON CONFLICT(id) DO UPDATE SET last_seen = excluded.last_seen, state = 'alive', "
    "workers = excluded.workers, busy = excluded.busy, snapshot = excluded.snapshot, "
    "handlers = excluded.handlers"
)
MARK_DEAD = "UPDATE nodes SET state = 'dead' WHERE state = 'alive' AND last_seen < ?"
PENDING = (
    "SELECT c.id, c.target, c.action, c.args, c.created_at, c.by FROM commands c "
    "WHERE c.target IN (?, '*') AND c.created_at >= ? AND NOT EXISTS ("
    "SELECT 1 FROM command_results r WHERE r.command_id = c.id AND r.node = ?) "
    "ORDER BY c.id LIMIT 100"
)
FORGET_NODES = "DELETE FROM nodes WHERE state != 'alive' AND last_seen < ?"
FORGET_COMMANDS = "DELETE FROM commands WHERE created_at < ?"
FORGET_RESULTS = "DELETE FROM command_results WHERE command_id NOT IN (SELECT id FROM commands)"
KEEP = 86400.0  # stopped/dead nodes and old commands are forgotten after a day


def heartbeat(txn: Txn, node: NodeInfo, dead_after: float, codec: Codec) -> list[NodeCommand]:
    now = txn.now
    txn.execute(SAVE_NODE, rows.node_params(node, now, codec))
    txn.execute(MARK_DEAD, (now - dead_after,))
    return [
        NodeCommand(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5])
        for r in txn.execute(PENDING, (node.id, node.started_at, node.id)).fetchall()
    ]


def node_stopped(txn: Txn, node_id: str) -> None:
    txn.execute(
        "UPDATE nodes SET state = 'stopped', last_seen = ? WHERE id = ?", (txn.now, node_id)
    )
    txn.execute(FORGET_NODES, (txn.now - KEEP,))
    txn.execute(FORGET_COMMANDS, (txn.now - KEEP,))
    txn.execute(FORGET_RESULTS)


def send_command(txn: Txn, target: str, action: str, args: str, by: str) -> int:
    cursor = txn.execute(
        "INSERT INTO commands (target, action, args, created_at, by) VALUES (?, ?, ?, ?, ?)",
        (target, action, args, txn.now, by),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def record_command(txn: Txn, result: CommandResult) -> None:
    txn.execute(
        "INSERT OR REPLACE INTO command_results (command_id, node, done_at, ok, outcome) "
        "VALUES (?, ?, ?, ?, ?)",
        (result.command_id, result.node, result.done_at, int(result.ok), result.outcome),
    )


NODES = (
    "SELECT id, host, pid, version, started_at, last_seen, state, workers, busy, snapshot, "
    "handlers FROM nodes ORDER BY state = 'alive' DESC, started_at, id"
)
RESULTS = (
    "SELECT command_id, node, done_at, ok, outcome FROM command_results "
    "WHERE command_id = ? ORDER BY done_at"
)
