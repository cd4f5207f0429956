"""What a read-only console refuses (``taskdeck console --read-only``), declared once,
and how a console hides payloads (``--hide-payloads``).

:data:`REFUSED` lists every action that changes the store, by the class that binds it
(the app, or a screen) with the words its refusal uses. ``ConsoleApp.run_action`` looks
each action up before it runs: keys, the command palette, the footer, and the screens'
buttons and lists (they run their change through an action too). A listed one is
refused with a toast and changes nothing; looking (help, filters, the state tabs, task
detail, opening the failed, schedules, alerts, settings and queues screens) works as
always. Behind this list the store itself is open read-only
(``engine.client(read_only=True)``): a write that got past it would be refused there.
"""

from __future__ import annotations

from collections.abc import Mapping

from textual import actions
from textual.app import App
from textual.dom import DOMNode

#: Actions that change the store, by the name of the class that binds them: action
#: name → what the refusal calls it.
#: The dashboard's keys that change something (the console's, and the replay's).
DASHBOARD_CHANGES: dict[str, str] = {
    "enqueue": "enqueue",
    "cancel": "cancel",
    "priority": "changing a priority",
    "retry": "retry",
    "workers": "changing workers",
    "set_workers": "changing workers",
    "autoscale": "switching the autoscaler",
    "apply_finding": "applying a fix",
    "pause_all": "pausing everything",
}
REFUSED: dict[str, dict[str, str]] = {
    "ConsoleApp": DASHBOARD_CHANGES,
    "TaskDetailScreen": {"cancel_task": "cancel", "retry_task": "retry", "edit_task": "edit"},
    "TaskStackScreen": {},  # it only looks (another node's task: see engine.stack)
    "OperationsScreen": {"abort": "aborting a bulk operation"},
    "FailedScreen": {
        "retry_one": "retry",
        "retry_all": "retry all",
        "purge_all": "purge",
    },
    "FailuresScreen": {"retry_group": "retrying a failure group", "purge_group": "purge"},
    "SchedulesScreen": {
        "toggle_pause": "pausing or resuming a schedule",
        "run_now": "running a schedule now",
    },
    "AlertsScreen": {"ack": "acknowledging an alert", "silence": "silencing a rule"},
    "SettingsScreen": {"apply": "changing settings", "reset": "resetting a setting"},
    "QueuesScreen": {"toggle_queue": "pausing or resuming a queue"},
    # ``taskdeck replay``: the dashboard's changes, and the screens that read the store
    "ReplayApp": {
        **DASHBOARD_CHANGES,
        "settings": "the settings screen",
        "queues": "pausing a queue",
        "failed": "the failed-tasks screen (it reads the store)",
        "schedules": "the schedules screen (it reads the store)",
        "alerts": "the alerts screen (it reads the store)",
        "audit": "the audit screen (it reads the store)",
        "failures": "the failures screen (it reads the store)",
        "operations": "the operations screen (it reads the store)",
        "trends": "the trends screen (it reads the store's history)",
        "throughput_hour": "the last hour's chart (it reads the store's history)",
        "filter": "filtering (the recording holds the rows shown, not the store)",
    },
}
WHY = "started with --read-only"
#: The action namespaces a binding may name (``app.apply_finding``).
TARGETS = ("app", "screen", "focused")
#: What stands in for a hidden payload or result.
HIDDEN = "(hidden: --hide-payloads)"


def refusal(namespace: object, action: str, why: str = WHY) -> str | None:
    """The toast refusing ``action`` bound on ``namespace``; None if it only looks."""
    for cls in type(namespace).__mro__:
        what = REFUSED.get(cls.__name__, {}).get(action)
        if what is not None:
            return f"read-only console: {what} is not allowed ({why})"
    return None


def refused_action(
    app: DOMNode,
    action: str | actions.ActionParseResult,
    default_namespace: DOMNode | None,
    namespaces: Mapping[str, DOMNode] | None,
    why: str = WHY,
) -> str | None:
    """The refusal of ``action`` as ``app.run_action`` would run it (None: it only looks,
    or it is off where it would run)."""
    where, name, params = action if isinstance(action, tuple) else actions.parse(action)
    target = (namespaces or {}).get(where)
    if target is None and where in TARGETS:
        target = getattr(app, where, None)
    target = target or default_namespace or app
    refused = refusal(target, name, why)
    return refused if refused is not None and target.check_action(name, params) else None


def payloads_hidden(app: App[object]) -> bool:
    """True when the console was started with ``--hide-payloads``."""
    return bool(getattr(app, "hide_payloads", False))
