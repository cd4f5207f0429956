"""The console's keys: the dashboard's bindings and the sets of actions the app checks
(off while the engine stops, off away from the dashboard). What a read-only console
refuses is declared in :mod:`console.read_only`."""

from __future__ import annotations

from textual.binding import Binding, BindingType

from engine import TaskState

#: Actions refused while the engine stops (they would change it).
CHANGES_ENGINE = frozenset(
    {
        "enqueue", "cancel", "priority", "retry", "workers", "set_workers", "queues",
        "autoscale", "settings", "apply_finding", "failed", "schedules", "alerts",
        "pause_all", "audit", "failures", "operations", "trends",
    }
)  # fmt: skip
#: Actions on the dashboard's panels: off (and out of the footer) on other screens.
DASHBOARD_ONLY = CHANGES_ENGINE | {
    "filter", "clear_filter", "show_state", "mark", "mark_view", "mark_all", "freeze", "view",
    "throughput_hour",
}  # fmt: skip
PRIORITY_KEYS = Binding.Group("Priority", compact=True)
POOL_KEYS = Binding.Group("Workers", compact=True)
STATE_KEYS = {str(i + 1): state for i, state in enumerate(TaskState)}
APPLY_FIX = Binding(
    "x",
    "apply_finding",
    "Apply fix",
    show=False,
    tooltip="Apply the selected bottleneck's suggestion",
)


#: The dashboard's keys (the help screen, the palette and the README list them).
DASHBOARD_KEYS: list[BindingType] = [
    Binding("question_mark", "help", "Help", key_display="?"),
    Binding("e", "enqueue", "Enqueue", tooltip="Enqueue a task (a form)"),
    Binding("c", "cancel", "Cancel", tooltip="Cancel the selected task"),
    Binding(
        "plus",
        "priority(1)",
        "Priority +",
        key_display="+",
        group=PRIORITY_KEYS,
        tooltip="Raise the selected task's priority",
    ),
    Binding(
        "minus",
        "priority(-1)",
        "Priority −",
        key_display="-",
        group=PRIORITY_KEYS,
        tooltip="Lower the selected task's priority",
    ),
    Binding(
        "right_square_bracket",
        "workers(1)",
        "Worker +",
        key_display="]",
        group=POOL_KEYS,
        tooltip="One worker more",
    ),
    Binding(
        "left_square_bracket",
        "workers(-1)",
        "Worker −",
        key_display="[",
        group=POOL_KEYS,
        tooltip="One worker less",
    ),
    Binding("w", "set_workers", "Workers…", show=False, tooltip="Set the worker count"),
    Binding("s", "settings", "Settings", tooltip="Change runtime settings"),
    Binding("p", "queues", "Pause", tooltip="Pause or resume a queue"),
    Binding("P", "pause_all", "Pause all", show=False, tooltip="Pause or resume everything"),
    Binding(
        "r", "retry", "Retry", show=False, tooltip="Retry the selected failed or cancelled task"
    ),
    Binding("a", "autoscale", "Autoscale", show=False, tooltip="Autoscaler on or off"),
    APPLY_FIX,
    Binding("f", "failed", "Failed", tooltip="Failed and cancelled tasks: retry, purge"),
    Binding(
        "F",
        "failures",
        "Failure groups",
        show=False,
        tooltip="Failed tasks grouped by handler and error: retry or purge a group",
    ),
    Binding("A", "alerts", "Alerts", show=False, tooltip="Alerts: firing, pending, recent"),
    Binding("U", "audit", "Audit", show=False, tooltip="Audit trail: who did what, when, why"),
    Binding(
        "T",
        "trends",
        "Trends",
        show=False,
        tooltip="Trends: throughput, success rate, p95s, backlog over 1 h to 30 d",
    ),
    Binding(
        "O",
        "operations",
        "Operations",
        show=False,
        tooltip="Bulk operations: progress, results, abort",
    ),
    Binding("t", "schedules", "Schedules", tooltip="Periodic tasks: next/last run, pause, run now"),
    Binding(
        "slash",
        "filter",
        "Filter",
        key_display="/",
        tooltip="Filter by handler, queue, error text, or a query: state=failed error~heic",
    ),
    Binding("escape", "clear_filter", "Clear marks, then the filter", show=False),
    Binding(
        "space",
        "mark",
        "Mark",
        show=False,
        tooltip="Mark or unmark the task under the cursor (c r + - then act on the marked)",
    ),
    Binding("v", "mark_view", "Mark view", show=False, tooltip="Mark every task on screen"),
    Binding(
        "V",
        "mark_all",
        "Mark all",
        show=False,
        tooltip="Mark every task matching the tab and the filter (not only those loaded)",
    ),
    Binding(
        "z",
        "freeze",
        "Freeze",
        show=False,
        tooltip="Freeze the queue table to read it (title: FROZEN); z again resumes",
    ),
    Binding(
        "h",
        "throughput_hour",
        "Last hour",
        show=False,
        tooltip="Throughput chart: the last 30 s (live) or the last hour (from the history)",
    ),
    Binding(
        "g",
        "view(1)",
        "Panel",
        tooltip="Compact layout (under 100×30): show the next panel",
    ),
    Binding("G", "view(-1)", "Panel back", show=False, tooltip="Compact layout: the panel before"),
    Binding("q", "quit_dialog", "Quit", tooltip="Quit: finish running tasks or stop now"),
    *(
        Binding(k, f"show_state('{s.value}')", f"Show {s.value}", show=False)
        for k, s in STATE_KEYS.items()
    ),
]
