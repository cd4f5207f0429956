"""An engine for tests/test_cli_task_logs.py (``--app tests.log_app:engine``): one
thread worker whose handler logs three lines, on the store named by
``TASKDECK_TEST_STORE``."""

from __future__ import annotations

import os

from engine import Engine

from . import log_handlers as lh

engine = Engine(
    os.environ.get("TASKDECK_TEST_STORE", "log-test.db"),
    workers=1,
    poll_interval=0.05,
    progress_interval=0.05,
    name="node-logs",
)
engine.task(name="images.resize", executor="thread")(lh.three_lines)
