"""The outbound-event benchmark (R15): ``python -m bench.event_push [--users N]``.

A tenant of N linked users, each with a default calendar, calendar sync on, and one
Emply outbound event each. Azurite and the Graph simulator (a subprocess with
``--latency-ms``) as in `bench.run`. Two syncs, each in a fresh process:

1. N ``event_push`` changes: the calendars are read (ceil(N / 20) `$batch`) and the
   events POSTed (ceil(N / 20) `$batch` more, N POST items): measured against that
   minimum;
2. again: every event is `created`, so zero POSTs.

Prints a table and writes ``bench/out/event_push.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
from pathlib import Path
from typing import Any

from bench import generate
from bench.run import OUT, Simulator, machine, sync_in_child
from bench.writeback import GROUP, import_doc
from bench.writeback import emply as linked_users
from bench.writeback import tenant as plain_tenant
from tests.support.azurite import start_azurite

BATCH = 20
POST = "POST /users/{id}/calendar/events"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.event_push", description=__doc__)
    parser.add_argument("--users", type=int, default=2_000)
    parser.add_argument("--latency-ms", type=float, default=20)
    parser.add_argument("--out", default=str(OUT / "event_push.json"))
    return parser.parse_args(argv)


def tenant(users: int) -> dict[str, Any]:
    out = plain_tenant(users)
    for person in out["users"]:
        person["calendars"] = [{"id": "cal-main", "name": "Calendar",
                                "isDefaultCalendar": True, "canEdit": True, "events": []}]
    return out


def emply(entra: dict[str, Any]) -> dict[str, Any]:
    doc = linked_users(entra)
    doc["settings"]["calendarSync"] = True
    doc["outboundEvents"] = [
        {"id": f"o-{i}", "userId": f"u-{i}", "subject": f"Interview {i}",
         "start": "2026-12-03T09:00:00Z", "end": "2026-12-03T10:00:00Z"}
        for i in range(len(entra["users"]))]
    return doc


def run(name: str, sim: Simulator, storage: str) -> dict[str, Any]:
    sim.reset()
    print(f"[bench] {name} ...", flush=True)
    result = sync_in_child(storage, sim.url)
    counts = sim.requests()["byEndpoint"]
    result["graphRequests"] = counts
    result["batches"] = counts.get("POST /$batch", 0)
    result["posts"] = counts.get(POST, 0)
    print(f"[bench] {name}: {result['wallSeconds']} s, {result['batches']} $batch, "
          f"{result['posts']} POST items, counts {result['counts']}", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    entra = tenant(args.users)
    tenant_file = out.parent / "event-push-tenant.json"
    tenant_file.write_text(json.dumps(entra))
    batches = math.ceil(args.users / BATCH)
    results: dict[str, Any] = {
        "command": f"python -m bench.event_push --users {args.users} "
                   f"--latency-ms {args.latency_ms:g}",
        "machine": machine(), "minimumBatches": 2 * batches}
    with start_azurite(timeout=60) as azurite:
        sim = Simulator(tenant_file, args.latency_ms)
        try:
            storage = azurite.connection_string
            asyncio.run(import_doc(storage, emply(entra), replace=True))
            results["push"] = run("outbound events pushed", sim, storage)
            results["again"] = run("nothing left to push", sim, storage)
        finally:
            sim.stop()
    push = results["push"]
    results["checks"] = {
        "batchesAtMinimum": push["batches"] == results["minimumBatches"],
        "everyEventPushedOnce": push["counts"].get("event_push") == args.users
        and push["posts"] == args.users,
        "secondRunPostsNothing": results["again"]["posts"] == 0,
    }
    out.write_text(json.dumps(results, indent=2))
    print(f"\n{args.users} outbound events, one per user (simulator latency "
          f"{args.latency_ms:g} ms; group {GROUP}, domain {generate.DOMAIN})")
    print(f"  $batch requests   {push['batches']} (minimum: ceil({args.users}/20) calendar "
          f"reads + as many for the POSTs = {results['minimumBatches']}), POST items "
          f"{push['posts']}")
    print(f"  sync wall time    {push['wallSeconds']} s, the sync's own CPU "
          f"{push['cpuSeconds']} s (nothing left: {results['again']['wallSeconds']} s, "
          f"{results['again']['posts']} POSTs)")
    print(f"  checks            {results['checks']}")
    print(f"\nwritten {out}")
    return 0 if all(results["checks"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
