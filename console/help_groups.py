"""The groups of keys the help screen (``?``) lists, after how to move around."""

from __future__ import annotations

from textual.binding import Binding, BindingType

from console.panels.bottlenecks import BottlenecksPanel
from console.panels.task_table import TaskTable
from console.screens.alerts import AlertsScreen
from console.screens.audit import AuditScreen
from console.screens.enqueue import EnqueueScreen
from console.screens.failed import FailedScreen
from console.screens.failures import FailuresScreen
from console.screens.operations import OperationsScreen
from console.screens.quit import QuitScreen
from console.screens.schedules import SchedulesScreen, ScheduleTable
from console.screens.settings import SettingsScreen
from console.screens.task_detail import TaskDetailScreen
from console.screens.task_stack import TaskStackScreen
from console.screens.trends import TrendsScreen

HelpGroups = list[tuple[str, list[BindingType]]]
#: Dashboard keys listed in their own group: marks, freeze and the compact layout.
MARK_ACTIONS = ("clear_filter", "mark", "mark_view", "mark_all", "freeze", "view(1)", "view(-1)")


def help_groups(first: HelpGroups, dashboard: list[BindingType]) -> HelpGroups:
    """``first`` (the keys that mean something else in this mode), then every key."""
    marks: list[BindingType] = [
        b for b in dashboard if isinstance(b, Binding) and b.action in MARK_ACTIONS
    ]
    return [
        *first,
        ("Dashboard", [b for b in dashboard if b not in marks]),
        ("Marks, freeze, panels", marks),
        ("Queue table", list(TaskTable.BINDINGS)),
        ("Bottlenecks", list(BottlenecksPanel.BINDINGS)),
        ("Failed tasks (f)", list(FailedScreen.BINDINGS)),
        ("Failure groups (F)", list(FailuresScreen.BINDINGS)),
        ("Schedules (t)", [*SchedulesScreen.BINDINGS, *ScheduleTable.BINDINGS]),
        ("Alerts (A)", list(AlertsScreen.BINDINGS)),
        ("Audit trail (U)", list(AuditScreen.BINDINGS)),
        ("Trends (T)", list(TrendsScreen.BINDINGS)),
        ("Bulk operations (O)", list(OperationsScreen.BINDINGS)),
        ("Enqueue form (e)", list(EnqueueScreen.BINDINGS)),
        ("Settings (s)", list(SettingsScreen.BINDINGS)),
        ("Task detail (enter)", list(TaskDetailScreen.BINDINGS)),
        ("Live stack (K in task detail)", list(TaskStackScreen.BINDINGS)),
        ("Quit dialog (q)", list(QuitScreen.BINDINGS)),
    ]
