"""Taskdeck's engine: a durable task queue on one SQLite file. Importable without Textual."""

from engine.codec import generate_key
from engine.context import TaskContext, current_task
from engine.core import Engine, TaskPage
from engine.errors import (
    EncryptionKeyError,
    EngineNotRunning,
    InvalidTransition,
    PayloadDecodeError,
    ResultNotSerializable,
    SettingsError,
    StoreError,
    StoreOpenError,
    TaskNotFound,
)
from engine.events import Event, EventKind, Subscription
from engine.model import (
    ACTIVE_STATES,
    ALLOWED_TRANSITIONS,
    PRIORITY_NAMES,
    TERMINAL_STATES,
    Priority,
    TaskRecord,
    TaskState,
    TimelineEntry,
    parse_priority,
)
from engine.registry import Handler, TaskHandle
from engine.retry import RetryPolicy
from engine.settings import Settings, SettingSpec
from engine.snapshot import EngineSnapshot, Finding, QueueInfo, WorkerInfo

__all__ = [
    "ACTIVE_STATES",
    "ALLOWED_TRANSITIONS",
    "PRIORITY_NAMES",
    "TERMINAL_STATES",
    "EncryptionKeyError",
    "Engine",
    "EngineNotRunning",
    "EngineSnapshot",
    "Event",
    "EventKind",
    "Finding",
    "Handler",
    "InvalidTransition",
    "PayloadDecodeError",
    "Priority",
    "QueueInfo",
    "ResultNotSerializable",
    "RetryPolicy",
    "SettingSpec",
    "Settings",
    "SettingsError",
    "StoreError",
    "StoreOpenError",
    "Subscription",
    "TaskContext",
    "TaskHandle",
    "TaskNotFound",
    "TaskPage",
    "TaskRecord",
    "TaskState",
    "TimelineEntry",
    "WorkerInfo",
    "current_task",
    "generate_key",
    "parse_priority",
]
