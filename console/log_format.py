"""How the command line writes its own log records to stderr: text (the default) or,
for log shippers, one JSON object per line (``run --headless --log-format json``).

The stderr handler shows records at ``--log-level`` and above; the root logger itself
lets INFO through, so a handler's ``log.info`` lines still reach its task's log (see
"Task logs" in the README) without showing on stderr.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from engine import current_task

#: the values ``--log-format`` takes
LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(levelname)s %(name)s: %(message)s"
HANDLER_NAME = "taskdeck-stderr"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (ISO 8601, UTC), level, logger, message; and
    task id, handler and node when the record was made inside a task."""

    def __init__(self, node: str | None = None) -> None:
        super().__init__()
        self.node = node

    def format(self, record: logging.LogRecord) -> str:
        at = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        row: dict[str, object] = {
            "time": at.replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            row["exception"] = self.formatException(record.exc_info)
        try:
            task = current_task()
        except RuntimeError:  # not made inside a task
            task = None
        if task is not None:
            row["task_id"] = task.id
            row["handler"] = task.handler
            row["attempt"] = task.attempt
        if self.node is not None:
            row["node"] = self.node
        return json.dumps(row, ensure_ascii=False)


def configure(level: str, log_format: str = "text") -> None:
    """The stderr handler on the root logger, at ``level``, in ``log_format``. Like
    ``logging.basicConfig``, it leaves a logging set up by someone else as it is (a
    second call replaces the handler the first one added)."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(old)
    if root.handlers:
        return
    handler = logging.StreamHandler()
    handler.set_name(HANDLER_NAME)
    handler.setLevel(level)
    formatter = JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    handler.setFormatter(formatter)
    root.addHandler(handler)
    root.setLevel(min(logging.INFO, handler.level))


def name_node(node: str) -> None:
    """Say which node the JSON lines come from (once the engine has its name)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler.formatter, JsonFormatter):
            handler.formatter.node = node
