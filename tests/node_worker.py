"""One node of the cluster tests (tests/test_cluster_processes.py) and of
bench/cluster_bench.py, run as the product's headless runner would run a user's app::

    NODE_STORE=… NODE_WORKERS=4 NODE_SLEEP=0.005 \
        python -m console.cli run --headless --app tests.node_worker:app

``app`` builds an engine named ``NODE_NAME`` (default: the usual host-pid name) on
``NODE_STORE`` with ``NODE_WORKERS`` workers, settings (and ``[alerts]``) from
``load_config()`` (``TASKDECK_CONFIG`` and ``TASKDECK_*`` variables),
and one handler, ``job``, that sleeps ``NODE_SLEEP`` seconds (0: returns at once).
"""

from __future__ import annotations

import asyncio
import os

from engine import Engine, load_config


def app() -> Engine:
    engine = Engine(
        os.environ["NODE_STORE"],
        workers=int(os.environ.get("NODE_WORKERS", "4")),
        name=os.environ.get("NODE_NAME") or None,
        config=load_config(),
    )
    pause = float(os.environ.get("NODE_SLEEP", "0"))

    @engine.task(name="job", retries=5)
    async def job(n: int) -> int:
        if pause:
            await asyncio.sleep(pause)
        return n

    return engine
