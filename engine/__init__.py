"""Taskdeck's engine: a durable task queue on one SQLite file. Importable without Textual."""

from engine.actor import Actor
from engine.alerts.config import AlertConfig, AlertConfigError, Channel, alert_config
from engine.alerts.machine import Alert
from engine.alerts.part import AlertEvent, Silence
from engine.alerts.rules import MEASURES, RuleError, parse_duration, parse_rule
from engine.audit import AuditEntry, check_note
from engine.codec import MAX_JSON_DEPTH, generate_key
from engine.config import Config, load_config
from engine.config_file import check_http_tokens
from engine.context import TaskContext, current_task
from engine.core import Engine
from engine.errors import (
    ConfigError,
    EncryptionKeyError,
    EngineNotRunning,
    InvalidTransition,
    PayloadDecodeError,
    PayloadError,
    ReadOnlyError,
    ResultNotSerializable,
    SettingsError,
    StoreError,
    StoreOpenError,
    TaskNotFound,
    TaskNotRunning,
    UnclosedEngineWarning,
)
from engine.events import Event, EventKind, Subscription
from engine.failures import FailureGroup, FailureGroups
from engine.handle import TaskHandle
from engine.history.part import HistoryStats, TrendPoint, parse_span, parse_step
from engine.limits import Rate, parse_rate
from engine.model import (
    ACTIVE_STATES,
    ALLOWED_TRANSITIONS,
    PRIORITY_NAMES,
    TERMINAL_STATES,
    AllPaused,
    CommandResult,
    NodeCommand,
    NodeInfo,
    Priority,
    ScheduleInfo,
    TaskId,
    TaskRecord,
    TaskState,
    TimelineEntry,
    WorkflowRecord,
    WorkflowStep,
    parse_priority,
)
from engine.operation import ACTIONS as BULK_ACTIONS
from engine.operation import DESTRUCTIVE as DESTRUCTIVE_ACTIONS
from engine.operation import Operation
from engine.payload import parse_payload
from engine.query import QueryError
from engine.reads import TaskPage
from engine.registry import Handler
from engine.retry import RetryPolicy
from engine.routes import Routes
from engine.saved_settings import SettingInfo
from engine.settings import Settings, SettingSpec
from engine.shutdown import StopReport
from engine.snapshot import EngineSnapshot, Finding, ProcessChild, QueueInfo, WorkerInfo
from engine.stacks import StackFrame, StackTrace
from engine.tasklog import LogLine
from engine.why import WhyWaiting
from engine.workers import check_workers, parse_workers
from engine.workflow import Chain, Group, Signature, chain, group

# isort: split
# What the console and the command line use besides the core API above.
from engine.aio import wait_event
from engine.bottleneck import STORE_WIDE_RULES
from engine.checks import check_handler_name, check_queue_name, check_seconds
from engine.cluster import node_findings, node_settings, unserved_findings
from engine.metrics import MetricsView
from engine.model import MAX_PRIORITY, MIN_PRIORITY
from engine.query import SEARCH_SECONDS
from engine.query import parse as parse_query
from engine.resources import ChildSample, ResourceSample
from engine.settings import parse_text, validate_value
from engine.snapshot import SEVERITY_ORDER
from engine.store import DEFAULT_URL, sqlite_file

__all__ = [
    "ACTIVE_STATES",
    "ALLOWED_TRANSITIONS",
    "MAX_JSON_DEPTH",
    "MEASURES",
    "PRIORITY_NAMES",
    "TERMINAL_STATES",
    "Actor",
    "Alert",
    "AlertConfig",
    "AlertConfigError",
    "AlertEvent",
    "AllPaused",
    "AuditEntry",
    "Chain",
    "Channel",
    "ChildSample",
    "CommandResult",
    "Config",
    "ConfigError",
    "EncryptionKeyError",
    "Engine",
    "EngineNotRunning",
    "EngineSnapshot",
    "Event",
    "EventKind",
    "FailureGroup",
    "FailureGroups",
    "Finding",
    "Group",
    "Handler",
    "InvalidTransition",
    "LogLine",
    "MetricsView",
    "NodeCommand",
    "NodeInfo",
    "PayloadDecodeError",
    "PayloadError",
    "Priority",
    "ProcessChild",
    "QueryError",
    "QueueInfo",
    "Rate",
    "ReadOnlyError",
    "ResourceSample",
    "ResultNotSerializable",
    "RetryPolicy",
    "Routes",
    "RuleError",
    "ScheduleInfo",
    "SettingInfo",
    "SettingSpec",
    "Settings",
    "SettingsError",
    "Signature",
    "Silence",
    "StackFrame",
    "StackTrace",
    "StopReport",
    "StoreError",
    "StoreOpenError",
    "Subscription",
    "TaskContext",
    "TaskHandle",
    "TaskId",
    "TaskNotFound",
    "TaskNotRunning",
    "TaskPage",
    "TaskRecord",
    "TaskState",
    "TimelineEntry",
    "UnclosedEngineWarning",
    "WhyWaiting",
    "WorkerInfo",
    "WorkflowRecord",
    "WorkflowStep",
    "alert_config",
    "chain",
    "check_http_tokens",
    "check_workers",
    "current_task",
    "generate_key",
    "group",
    "load_config",
    "parse_duration",
    "parse_payload",
    "parse_priority",
    "parse_rate",
    "parse_rule",
    "parse_workers",
]

__all__ += ["Operation"]

# Used by the console and the command line.
__all__ += [
    "BULK_ACTIONS",
    "DEFAULT_URL",
    "DESTRUCTIVE_ACTIONS",
    "MAX_PRIORITY",
    "MIN_PRIORITY",
    "SEARCH_SECONDS",
    "SEVERITY_ORDER",
    "STORE_WIDE_RULES",
    "check_handler_name",
    "check_note",
    "check_queue_name",
    "check_seconds",
    "node_findings",
    "node_settings",
    "parse_query",
    "parse_text",
    "sqlite_file",
    "unserved_findings",
    "validate_value",
    "wait_event",
]

# The metrics history (engine.history): trends and statistics.
__all__ += ["HistoryStats", "TrendPoint", "parse_span", "parse_step"]
