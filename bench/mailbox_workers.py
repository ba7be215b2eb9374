"""The mailbox pass's shards worked by 1, 2, 4, 8 worker processes polling the queue:
``python -m bench.mailbox_workers [--users N] [--latency-ms L] [--workers 1,2,4,8]``.

Azurite and the Graph simulator (a subprocess with ``--latency-ms``, 500 by default),
a tenant of N linked users with calendar sync on, one calendar of one event each, and
`EMPLY_SYNC_MAILBOX_SHARDS=queue`: a run puts its shards on queue
``emply-sync-mailboxes`` and stays `running` until they are done. The Functions host's
queue trigger is stood in for (as in `bench.leaver_latency`) by worker processes that
each receive one message at a time and hand it to the real ``run_mailbox_shard``
function. A first run (8 workers) mirrors every calendar; then per worker count one
run with nothing changed (notifications off, so every mailbox is read again: the
Graph side dominates) is timed from the run's start (its CLI process) until the last
shard is done; the workers are started and warm before the run, and work shards as soon
as the run queues them. Writes
``bench/out/mailbox_workers.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import harness
from bench.harness import import_doc
from bench.run import OUT, Simulator, machine
from shared import config
from tests.support.azurite import start_azurite

MODULE = "bench.mailbox_workers"
ROOT = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__)
    parser.add_argument("--users", type=int, default=4_000)
    parser.add_argument("--latency-ms", type=float, default=500)
    parser.add_argument("--workers", default="1,2,4,8")
    parser.add_argument("--shard-size", type=int, default=250)
    parser.add_argument("--out", default=str(OUT / "mailbox_workers.json"))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--stop", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


tenant = harness.calendar_tenant
emply = harness.calendar_emply


def worker(stop: Path) -> int:
    """One stand-in for a warm queue-triggered instance: polls the queue (every 0.2 s
    when it is empty), works one message at a time, until `stop` exists; prints how
    many it worked and when it finished the last (epoch seconds)."""
    from tests.e2e.test_http import function
    from tests.support import run_queue as rq

    storage = os.environ[config.STORAGE_CONNECTION_STRING]
    run_mailbox_shard = function("run_mailbox_shard")
    worked, last = 0, 0.0
    print("ready", flush=True)
    while not stop.exists():
        delivery = rq.receive(storage, config.MAILBOX_QUEUE_NAME)
        if delivery is None:
            time.sleep(0.2)
            continue
        asyncio.run(run_mailbox_shard(delivery.message))
        rq.complete(storage, delivery, config.MAILBOX_QUEUE_NAME)
        worked, last = worked + 1, time.time()
    print(json.dumps({"worked": worked, "last": last}), flush=True)
    return 0


def cli(env: dict[str, str], *args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "shared.cli", *args, "--json"], env=env,
                          cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode not in (0, 1):
        raise RuntimeError(f"emply-sync {' '.join(args)}: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def timed_run(env: dict[str, str], workers: int, tmp: Path) -> dict[str, Any]:
    """Warm workers first; then the run (its directory part and the shards queued), and
    the time from the shards queued until the last one is done."""
    from tests.support import run_queue as rq

    stop = tmp / f"stop-{workers}-{time.time_ns()}"
    procs = [subprocess.Popen([sys.executable, "-m", MODULE, "--worker", "--stop", str(stop)],
                              env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
             for _ in range(workers)]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    started = time.time()
    report = cli(env, "sync")
    queued = time.time()
    storage = env[config.STORAGE_CONNECTION_STRING]
    while rq.count(storage, config.MAILBOX_QUEUE_NAME) > 0:
        time.sleep(0.2)
    stop.touch()
    ends = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    last = max([e["last"] for e in ends if e["worked"]], default=queued)
    final = cli(env, "runs", str(report["runId"]))
    return {"workers": workers, "wallSeconds": round(last - started, 1),
            "shardSeconds": round(last - queued, 1),
            "runQueuedSeconds": round(queued - started, 1),
            "shardsPerWorker": [e["worked"] for e in ends],
            "status": final.get("status"), "shards": final.get("mailboxShards") or {},
            "counts": final.get("counts"), "errors": len(final.get("errors") or [])}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker(Path(args.stop))
    counts = [int(w) for w in args.workers.split(",")]
    entra = tenant(args.users)
    out, tenant_file, results = harness.start(MODULE, args, entra, "mailbox-workers.json")
    results["machine"] = machine()
    results["runs"] = []
    with start_azurite(timeout=60) as azurite:
        sim = Simulator(tenant_file, args.latency_ms)
        try:
            storage = azurite.connection_string
            asyncio.run(import_doc(storage, emply(entra)))
            del entra
            env = {**os.environ, config.STORAGE_CONNECTION_STRING: storage,
                   config.GRAPH_URL: sim.url, config.MAILBOX_SHARDS: "queue",
                   config.MAILBOX_SHARD_SIZE: str(args.shard_size)}
            print("[bench] first run (8 workers) ...", flush=True)
            results["first"] = timed_run(env, 8, out.parent)
            for n in counts:
                print(f"[bench] no change, {n} workers ...", flush=True)
                results["runs"].append(timed_run(env, n, out.parent))
        finally:
            sim.stop()
    base = results["runs"][0]["wallSeconds"] if results["runs"] else None
    print(f"\nmailbox shards of {args.users} users on the queue (simulator latency "
          f"{args.latency_ms:g} ms, shards of about {args.shard_size})")
    for run in results["runs"]:
        speedup = f"{base / run['wallSeconds']:.2f}x" if base else "-"
        print(f"  {run['workers']} workers: wall {run['wallSeconds']} s from the run's start "
              f"to its last shard done ({speedup}; the run's own process "
              f"{run['runQueuedSeconds']} s, shards after it {run['shardSeconds']} s), "
              f"status {run['status']}, shards {run['shards']}, per worker "
              f"{run['shardsPerWorker']}")
    out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
