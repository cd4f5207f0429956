"""The long crash soak: kill -9 at random moments while an engine works; JSON summary.

    python bench/crash_soak.py                  # 10,000 tasks, 20 kills
    python bench/crash_soak.py --tasks 2000 --kills 5 --producer-kills 20

A child process runs the engine (8 workers, 1 s leases) on one SQLite file with a
deterministic handler (0–20 ms; 10 % of ids fail on attempts 1–2; 2 % always fail)
that writes start/done lines to a ledger. The parent enqueues in batches of 500 and
SIGKILLs the child at a random moment 0.2–2 s into each run, restarting it on the same
file, then lets it drain and checks: nothing lost, each task in the state its handler
decides, none left running, integrity_check ok after every kill, attempts within the
retry budget, one terminal transition per task. Duplicates (tasks whose handler
finished twice because a kill came between the handler and the commit) are reported.
Then a producer that prints each acknowledged id is killed at random; every printed
id must be in the store.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.crash_harness import acknowledged_enqueues, soak, verify  # noqa: E402


async def main(tasks: int, kills: int, producer_kills: int, seed: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        db, ledger = Path(tmp) / "soak.db", Path(tmp) / "ledger.txt"
        t0 = time.monotonic()
        run = await soak(db, ledger, tasks=tasks, kills=kills, seed=seed)
        summary = await verify(db, ledger, run.ids, list(range(tasks)))
        elapsed = time.monotonic() - t0
        acks = await acknowledged_enqueues(Path(tmp) / "acks.db", producer_kills, seed)
    return {
        **summary,
        "kills": run.kills,
        "integrity_after_every_kill": all(r == "ok" for r in run.integrity),
        "max_recovery_s": round(max(run.recovery_s, default=0.0), 2),
        "final_exit_code": run.exit_codes[-1] if run.exit_codes else None,
        "seconds": round(elapsed, 1),
        "acknowledged_enqueues": acks,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--producer-kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    result = asyncio.run(main(args.tasks, args.kills, args.producer_kills, args.seed))
    print(json.dumps(result, indent=2))
