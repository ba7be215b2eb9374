"""The mailbox read's wall time by how many `$batch` requests fly at once:
``python -m bench.mailbox_reads [--users N] [--latency-ms L] [--batches 4,16,64]``.

A tenant of N users, each with two calendars of one event, served by the Graph
simulator (a subprocess with ``--latency-ms``, 500 by default: a realistic `$batch` of
20 mailbox calls). For each bound on `$batch` requests in flight, one process reads
what a full mailbox pass reads from Graph: every user's calendars (``$batch`` of 20
users), then every calendar's window through ``calendarView/delta`` (``$batch`` of 20
calendars), all through one mailbox gate (`shared.graph.mailbox_gate`: at most 4
requests per mailbox). Bound 4 is the design before the gate (4 batches in flight);
the others are the gate's (`EMPLY_SYNC_MAILBOX_BATCHES`, 16 by default). Only Graph
is read: no Azurite, nothing written. Prints the wall time, requests and 429s per bound
and writes ``bench/out/mailbox_reads.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import time
from pathlib import Path
from typing import Any

from bench import generate, harness
from bench.harness import BATCH, BATCH_ENDPOINT
from bench.run import OUT, Simulator, machine
from shared.graph import client as graph_client
from shared.graph import events as graph_events
from shared.graph import mailboxes as graph_mailboxes
from shared.graph.mailbox_gate import MailboxGate

MODULE = "bench.mailbox_reads"
CALENDARS = 2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=float, default=500)
    parser.add_argument("--batches", default="4,16,64",
                        help="bounds on $batch requests in flight, comma-separated")
    parser.add_argument("--out", default=str(OUT / "mailbox_reads.json"))
    return parser.parse_args(argv)


def tenant(users: int) -> dict[str, Any]:
    day = dt.datetime.now(dt.UTC).date().isoformat()

    def calendar(i: int, c: int) -> dict[str, Any]:
        return {"id": f"cal-{i}-{c}", "name": "Calendar" if c == 0 else f"Team {c}",
                "isDefaultCalendar": c == 0, "canEdit": True,
                "events": [{"id": f"ev-{i}-{c}", "subject": "Meeting", "showAs": "busy",
                            "start": {"dateTime": f"{day}T09:00:00", "timeZone": "UTC"},
                            "end": {"dateTime": f"{day}T09:30:00", "timeZone": "UTC"}}]}

    return harness.tenant([{**generate.entra_user(i),
                            "calendars": [calendar(i, c) for c in range(CALENDARS)]}
                           for i in range(users)])


async def read_all(url: str, entra_ids: list[str], batches: int) -> dict[str, Any]:
    """One full read through one gate bounded to `batches`: its wall time and requests."""
    graph = graph_client.create_graph_client(url, env={})
    gate = MailboxGate(batches=batches)
    now = dt.datetime.now(dt.UTC)
    window = ((now - dt.timedelta(days=1)).strftime("%Y-%m-%dT00:00:00Z"),
              (now + dt.timedelta(days=30)).strftime("%Y-%m-%dT00:00:00Z"))
    try:
        started = time.perf_counter()
        calendars = await graph_mailboxes.read_calendars(graph, entra_ids, gate=gate)
        listed = time.perf_counter() - started
        wanted = [graph_events.Wanted(user, str(cal["id"]))
                  for user, cals in calendars.mailboxes.items() for cal in cals or []]
        read = await graph_events.read_events(graph, wanted, window, gate=gate)
        wall = time.perf_counter() - started
    finally:
        await graph.aclose()
    return {"batches": batches, "wallSeconds": round(wall, 1),
            "listSeconds": round(listed, 1),
            "throttled": calendars.throttled + read.throttled,
            "peakBatches": gate.peak_batches,
            "failures": len(calendars.failures) + len(read.failures),
            "calendarsRead": len(read.calendars)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bounds = [int(b) for b in args.batches.split(",")]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tenant_file = out.parent / "mailbox-reads-tenant.json"
    entra = tenant(args.users)
    tenant_file.write_text(json.dumps(entra))
    entra_ids = [str(p["id"]) for p in entra["users"]]
    del entra
    minimum = math.ceil(args.users / BATCH) + math.ceil(args.users * CALENDARS / BATCH)
    results: dict[str, Any] = {
        "command": f"python -m {MODULE} --users {args.users} "
                   f"--latency-ms {args.latency_ms:g} --batches {args.batches}",
        "machine": machine(), "minimumRequests": minimum, "runs": []}
    sim = Simulator(tenant_file, args.latency_ms)
    try:
        for bound in bounds:
            sim.reset()
            print(f"[bench] {bound} batches in flight ...", flush=True)
            run = asyncio.run(read_all(sim.url, entra_ids, bound))
            # The simulator counts each `$batch` and each item inside one.
            run["requests"] = sim.requests()["byEndpoint"].get(BATCH_ENDPOINT, 0)
            results["runs"].append(run)
    finally:
        sim.stop()
    print(f"\nfull mailbox read of {args.users} users, {CALENDARS} calendars each "
          f"(simulator latency {args.latency_ms:g} ms; minimum {minimum} $batch)")
    for run in results["runs"]:
        print(f"  {run['batches']:3} in flight (peak {run['peakBatches']}): wall "
              f"{run['wallSeconds']} s (calendars listed in {run['listSeconds']} s), "
              f"{run['requests']} $batch, {run['throttled']} throttled, "
              f"{run['failures']} failures, {run['calendarsRead']} calendars read")
    out.write_text(json.dumps(results, indent=2))
    return 0 if all(r["failures"] == 0 for r in results["runs"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
