"""The worker pool: slots, dispatch and handover (:mod:`.dispatch`, :mod:`.slots`),
one attempt (:mod:`.attempt`), and the thread and process executors."""

from engine.pool.dispatch import WorkerPool

__all__ = ["WorkerPool"]
