"""Issue 13 item 18: worker processes of the ``process`` executor never outlive their
engine. An engine SIGKILLed while its worker processes start, while they run a
CPU-bound task, or while they wait idle leaves none behind (the issue saw 20 of 24
alive after six kills), and none prints a traceback on the way out."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from .conftest import ROOT

TASKS = 3
MARK = "TASKDECK_ORPHAN_TEST"


def marked(mark: str) -> list[psutil.Process]:
    """Every process started with ``MARK=mark`` in its environment (children inherit it)."""
    found = []
    for proc in psutil.process_iter(["environ"]):
        if (proc.info.get("environ") or {}).get(MARK) == mark:
            found.append(proc)
    return found


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll another process's state (nothing announces it)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def children_of(proc: subprocess.Popen[str]) -> list[psutil.Process]:
    try:
        return psutil.Process(proc.pid).children()
    except psutil.NoSuchProcess:
        return []


def kill_engine(tmp_path: Path, moment: str) -> tuple[float, str]:
    """Start an engine with TASKS process tasks, SIGKILL it at ``moment``; return how
    long its worker processes lived on (until the last one closed its stderr) and
    what was printed on stderr."""
    mark = uuid.uuid4().hex
    run = tmp_path / mark
    run.mkdir()
    ledger = run / "ledger"
    seconds = "0" if moment == "idle" else "60"
    command = ["-m", "tests.orphan_worker", str(run / "t.db"), str(ledger), str(TASKS), seconds]
    engine = subprocess.Popen(
        [sys.executable, *command],
        cwd=ROOT,
        env={**os.environ, MARK: mark},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        if moment == "starting":  # the first worker process exists, maybe not ready
            wait_for(lambda: bool(children_of(engine)), "a worker process")
        elif moment == "running":  # every worker process is in its CPU loop
            wait_for(
                lambda: ledger.exists() and ledger.read_text().count("start") == TASKS,
                "the tasks to start",
            )
        else:
            assert engine.stdout is not None
            assert engine.stdout.readline() == "idle\n"
        engine.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        # stderr is shared with the worker processes: it ends when the last one exits
        _, err = engine.communicate(timeout=15)
        lived = time.monotonic() - killed
        wait_for(lambda: not marked(mark), "the worker processes to be gone", timeout=5)
        return lived, err
    finally:
        for proc in marked(mark):  # never leave strays behind a failed test
            proc.kill()
        if engine.poll() is None:
            engine.kill()
            engine.wait()


@pytest.mark.timeout(120)
def test_worker_processes_die_with_their_engine_at_any_moment(tmp_path: Path) -> None:
    for moment in ("starting", "starting", "running", "running", "idle"):
        lived, err = kill_engine(tmp_path, moment)
        assert lived < 5.0, f"{moment}: the worker processes lived on {lived:.1f} s"
        assert "Traceback" not in err and "Error" not in err, f"{moment}: {err}"
