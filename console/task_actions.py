"""Cancel and retry one task from any screen, each saying what happened or why not."""

from __future__ import annotations

from textual.app import App

from engine import Engine, TaskState


async def cancel_task(app: App[object], engine: Engine, task_id: str, hint: str = "") -> bool:
    """Cancel ``task_id``; a toast says what it was, or why it cannot be cancelled."""
    try:
        previous: TaskState = await engine.cancel(task_id)
    except (LookupError, ValueError) as exc:
        app.notify(f"cannot cancel: {exc}", severity="warning")
        return False
    app.notify(f"task {task_id} cancelled (was {previous.value}){hint}")
    return True


async def retry_task(app: App[object], engine: Engine, task_id: str) -> bool:
    """Queue ``task_id`` again; a toast says what it was, or why it cannot be retried."""
    try:
        previous: TaskState = await engine.retry(task_id)
    except (LookupError, ValueError) as exc:
        app.notify(f"cannot retry: {exc}", severity="warning")
        return False
    app.notify(f"task {task_id} queued again (was {previous.value})")
    return True
