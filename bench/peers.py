"""Taskdeck beside other Python task queues on this machine, in one run; prints JSON.

    pip install -e '.[bench]'          # the peers: huey, pgqueuer, procrastinate
    python bench/peers.py              # SQLite: Taskdeck, Huey; PostgreSQL: Taskdeck,
                                       # pgqueuer, procrastinate
    python bench/peers.py --quick      # fewer tasks
    python bench/peers.py --backend sqlite --peer huey

The same workload for every peer: N no-op tasks, the worker (consumer) and the
producer in separate processes, the consumer started and idle first. Three runs per
peer, each on a fresh SQLite file or a fresh PostgreSQL database (dropped afterwards):

- ``e2e_batch``: the producer enqueues N tasks in batches of 500 (peers without a batch
  call: skipped); ``e2e_single``: one awaited enqueue at a time. Each gives the
  end-to-end rate (N / time from the first enqueue to the N-th handler call, read on
  ``time.monotonic``, one clock for every process) and the producer's enqueue rate
  while the consumer runs.
- ``latency``: timed tasks enqueued one at a time about every 10 ms (low load);
  enqueue→start p50 / p99 (from the producer's clock reading before it enqueues to
  the handler's start).

Every peer at its defaults except: the worker count (Taskdeck's default, the same for
all; ``--workers``), and Huey's poll (1 ms without back-off, its fastest; its default
starts at 100 ms and backs off to 10 s). ``taskdeck_over_peer`` divides Taskdeck's
figure by the peer's on the same store: above 1 is Taskdeck faster for rates, slower
for latencies. For a peer without batches, ``e2e_batch`` compares with its single
enqueues (its fastest way in). A peer that is not installed or fails is listed under
``skipped`` with the reason. ``load_1m``: the machine's 1-minute load average before and
after the run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import importlib.util
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import peer_apps
import two_process
from bench_app import Tally

PG = "postgresql://postgres@127.0.0.1:5432"
PEERS = {"sqlite": ("taskdeck", "huey"), "postgres": ("taskdeck", "pgqueuer", "procrastinate")}
MODES = ("e2e_batch", "e2e_single", "latency")
PRODUCER_MODE = {"e2e_batch": "batch", "e2e_single": "single", "latency": "latency"}
CONFIG = {
    "taskdeck": "taskdeck run --headless, default settings, {w} workers",
    "huey": "SqliteHuey, {w} thread workers, poll 1 ms without back-off, no batch enqueue",
    "pgqueuer": "QueueManager.run() defaults (batches of 10, no concurrency cap), asyncpg",
    "procrastinate": "run_worker_async(concurrency={w}), LISTEN/NOTIFY (default), psycopg",
}


# -- stores ------------------------------------------------------------------------------
async def _pg(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(f"{PG}/test")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def pg_unavailable() -> str | None:
    try:
        asyncio.run(_pg("SELECT 1"))
    except Exception as exc:
        return f"PostgreSQL at {PG}/test: {exc}"
    return None


@contextlib.contextmanager
def fresh_store(backend: str, peer: str, tmp: Path) -> Iterator[str]:
    """A new SQLite file, or a new PostgreSQL database dropped afterwards."""
    if backend == "sqlite":
        yield str(tmp / f"{peer}.db")
        return
    name = f"bench_{peer}_{secrets.token_hex(4)}"
    asyncio.run(_pg(f"CREATE DATABASE {name}"))
    try:
        yield f"{PG}/{name}"
    finally:
        asyncio.run(_pg(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


# -- processes ---------------------------------------------------------------------------
def role(name: str, peer: str, store: str, *extra: str) -> list[str]:
    cmd = [sys.executable, __file__, "--role", name, "--peer", peer, "--store", store]
    return [*cmd, *extra]


def start_consumer(
    peer: str, store: str, out: Path, expect: int, workers: int
) -> subprocess.Popen[bytes]:
    """The worker process: its stderr goes to ``out.log`` (quoted if it fails)."""
    if peer == "taskdeck":
        cmd = two_process.node_command()
        env = two_process.node_env(store, out, expect, workers)
        cwd = two_process.ROOT
    else:
        cmd = role("consume", peer, store, "--out", str(out), "--tasks", str(expect))
        cmd += ["--workers", str(workers)]
        env, cwd = dict(os.environ), Path.cwd()
    with out.with_name(out.name + ".log").open("wb") as log:
        return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=log)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def failed(what: str, out: Path, code: int | None) -> RuntimeError:
    log = out.with_name(out.name + ".log")
    tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.exists() else []
    return RuntimeError(f"{what} exited with code {code}: {' | '.join(tail)}")


def wait_file(path: Path, proc: subprocess.Popen[bytes], out: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise failed("the consumer", out, proc.returncode)
        if time.monotonic() > deadline:
            raise RuntimeError(f"no {path.name} from the consumer within {timeout:g} s")
        time.sleep(0.01)


def run_role(cmd: list[str], what: str) -> str:
    """Run a setup or producer process; its last line of output, or why it failed."""
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        tail = " | ".join(out.stderr.strip().splitlines()[-3:])
        raise RuntimeError(f"the {what} exited with code {out.returncode}: {tail}")
    return (out.stdout.strip().splitlines() or [""])[-1]


def produce(peer: str, store: str, mode: str, n: int) -> dict[str, Any]:
    line = run_role(role("produce", peer, store, "--mode", mode, "--tasks", str(n)), "producer")
    result: dict[str, Any] = json.loads(line)
    return result


def one_run(backend: str, peer: str, mode: str, n: int, workers: int) -> dict[str, Any]:
    """One fresh store, one consumer process, one producer process."""
    with tempfile.TemporaryDirectory() as tmp, fresh_store(backend, peer, Path(tmp)) as store:
        run_role(role("setup", peer, store), "setup")
        out = Path(tmp) / "done.json"
        consumer = start_consumer(peer, store, out, n, workers)
        try:
            produce(peer, store, "ping", 1)
            wait_file(out.with_name(out.name + ".ready"), consumer, out, 60)
            sent = produce(peer, store, PRODUCER_MODE[mode], n)
            wait_file(out, consumer, out, 900)
        finally:
            stop(consumer)
        done = json.loads(out.read_text())
    if mode == "latency":
        ms = sorted(done["latencies_ms"])
        return {
            "samples": len(ms),
            "p50_ms": statistics.median(ms),
            "p99_ms": ms[max(0, int(len(ms) * 0.99) - 1)],
        }
    return {
        "tasks": n,
        "rate": n / (done["t_done"] - sent["t_start"]),
        "enqueue_rate": n / (sent["t_end"] - sent["t_start"]),
    }


# -- the table ---------------------------------------------------------------------------
def version(peer: str) -> str:
    try:
        return importlib.metadata.version(peer)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def not_runnable(peer: str) -> str | None:
    if peer != "taskdeck" and importlib.util.find_spec(peer) is None:
        return f"{peer} is not installed (pip install -e '.[bench]')"
    return None


def row(backend: str, peer: str, n: int, samples: int, workers: int) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for mode in MODES:
        if mode == "e2e_batch" and peer == "huey":
            figures[mode] = {"skipped": "Huey has no batch enqueue (map() enqueues one by one)"}
            continue
        try:
            figures[mode] = one_run(
                backend, peer, mode, samples if mode == "latency" else n, workers
            )
        except Exception as exc:
            figures[mode] = {"skipped": f"{type(exc).__name__}: {exc}"}
    lat = figures["latency"]
    return {
        "backend": backend,
        "peer": peer,
        "version": version(peer),
        "config": CONFIG[peer].format(w=workers),
        "e2e_batch_per_s": figures["e2e_batch"].get("rate"),
        "e2e_single_per_s": figures["e2e_single"].get("rate"),
        "enqueue_batch_per_s": figures["e2e_batch"].get("enqueue_rate"),
        "enqueue_single_per_s": figures["e2e_single"].get("enqueue_rate"),
        "latency_p50_ms": lat.get("p50_ms"),
        "latency_p99_ms": lat.get("p99_ms"),
        "skipped": {m: f["skipped"] for m, f in figures.items() if "skipped" in f},
    }


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


def compare(ours: dict[str, Any], peer: dict[str, Any]) -> dict[str, float | None]:
    peer_batch = peer["e2e_batch_per_s"] or peer["e2e_single_per_s"]
    return {
        "e2e_batch": ratio(ours["e2e_batch_per_s"], peer_batch),
        "e2e_single": ratio(ours["e2e_single_per_s"], peer["e2e_single_per_s"]),
        "latency_p50": ratio(ours["latency_p50_ms"], peer["latency_p50_ms"]),
        "latency_p99": ratio(ours["latency_p99_ms"], peer["latency_p99_ms"]),
    }


def rounded(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    if isinstance(value, float):
        return round(value, 2) if abs(value) < 100 else round(value)
    return value


def bench(backends: list[str], peers: list[str] | None, n: int, samples: int, workers: int) -> Any:
    rows: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    load_before = os.getloadavg()[0]
    for backend in backends:
        down = pg_unavailable() if backend == "postgres" else None
        ours: dict[str, Any] | None = None
        for peer in PEERS[backend]:
            if peers and peer not in peers and peer != "taskdeck":
                continue
            reason = down or not_runnable(peer)
            if reason:
                skipped[f"{backend}/{peer}"] = reason
                continue
            line = row(backend, peer, n, samples, workers)
            if peer == "taskdeck":
                ours = line
            elif ours is not None:
                line["taskdeck_over_peer"] = compare(ours, line)
            rows.append(line)
    return {
        "cpus": os.cpu_count(),
        "load_1m": {"before": load_before, "after": os.getloadavg()[0]},
        "tasks": n,
        "latency_samples": samples,
        "workers": workers,
        "rows": rows,
        "skipped": skipped,
    }


# -- the roles, in their own processes ---------------------------------------------------
def play(args: argparse.Namespace) -> None:
    if args.role == "setup":
        peer_apps.call(peer_apps.SETUP[args.peer], args.store)
    elif args.role == "consume":
        tally = Tally(args.tasks, args.out)
        peer_apps.call(peer_apps.CONSUME[args.peer], args.store, tally, args.workers)
    else:
        clock = peer_apps.Clock()
        peer_apps.call(peer_apps.PRODUCE[args.peer], args.store, args.mode, args.tasks, clock)
        print(json.dumps({"t_start": clock.t_start, "t_end": clock.t_end}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer tasks")
    parser.add_argument("--tasks", type=int, help="tasks per end-to-end run")
    parser.add_argument("--backend", choices=list(PEERS), action="append")
    parser.add_argument("--peer", help="only this peer (and Taskdeck)")
    parser.add_argument(
        "--workers", type=int, default=two_process.DEFAULT_WORKERS, help="worker count for all"
    )
    parser.add_argument("--role", choices=["setup", "consume", "produce"], help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role:
        play(args)
        return
    n = args.tasks or (2000 if args.quick else 10_000)
    samples = 100 if args.quick else 300
    backends = args.backend or list(PEERS)
    peers = [args.peer] if args.peer else None
    print(json.dumps(rounded(bench(backends, peers, n, samples, args.workers)), indent=2))


if __name__ == "__main__":
    main()
