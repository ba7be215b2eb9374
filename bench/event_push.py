"""The outbound-event benchmark (R15): ``python -m bench.event_push [--users N]``.

A tenant of N linked users, each with a default calendar, calendar sync on, and one
Emply outbound event each. Azurite and the Graph simulator (a subprocess with
``--latency-ms``) as in `bench.run`. Two syncs, each in a fresh process:

1. N ``event_push`` changes: the calendars are listed (ceil(N / 20) `$batch`), the
   default calendars' events read for the R14 mirror (ceil(N / 20) `$batch`) and the
   events POSTed (ceil(N / 20) `$batch` more, N POST items): measured against that
   minimum;
2. again: every event is `created`, so zero POSTs.

Prints a table and writes ``bench/out/event_push.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import math
from typing import Any

from bench import generate, harness
from bench.harness import BATCH, GROUP, import_doc
from bench.run import Simulator
from bench.writeback import emply as linked_users
from bench.writeback import tenant as plain_tenant

MODULE = "bench.event_push"
POST = "POST /users/{id}/calendar/events"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return harness.parse_args(MODULE, __doc__, users=2_000, out="event_push.json", argv=argv)


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
    return harness.measure(name, sim, storage, {"posts": POST})


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    entra = tenant(args.users)
    out, tenant_file, results = harness.start(MODULE, args, entra, "event-push-tenant.json")
    results["minimumBatches"] = 3 * math.ceil(args.users / BATCH)
    with harness.services(tenant_file, args.latency_ms) as (sim, storage):
        asyncio.run(import_doc(storage, emply(entra), replace=True))
        results["push"] = run("outbound events pushed", sim, storage)
        results["again"] = run("nothing left to push", sim, storage)
    push = results["push"]
    results["checks"] = {
        "batchesAtMinimum": push["batches"] == results["minimumBatches"],
        "everyEventPushedOnce": push["counts"].get("event_push") == args.users
        and push["posts"] == args.users,
        "secondRunPostsNothing": results["again"]["posts"] == 0,
    }
    print(f"\n{args.users} outbound events, one per user (simulator latency "
          f"{args.latency_ms:g} ms; group {GROUP}, domain {generate.DOMAIN})")
    print(f"  $batch requests   {push['batches']} (minimum: ceil({args.users}/20) calendar "
          f"lists + as many event reads (R14) + as many for the POSTs = "
          f"{results['minimumBatches']}), POST items "
          f"{push['posts']}")
    print(f"  sync wall time    {push['wallSeconds']} s, the sync's own CPU "
          f"{push['cpuSeconds']} s (nothing left: {results['again']['wallSeconds']} s, "
          f"{results['again']['posts']} POSTs)")
    return harness.finish(out, results)


if __name__ == "__main__":
    raise SystemExit(main())
