"""The outbound-event benchmark (R15): ``python -m bench.event_push [--users N]``.

A tenant of N linked users, each with a default calendar, calendar sync on, and one
Emply outbound event each (an interview with one attendee). Azurite and the Graph
simulator (a subprocess with ``--latency-ms``) as in `bench.run`. Four syncs, each in a
fresh process:

1. N ``event_push`` creations: the calendars are listed (ceil(N / 20) `$batch`), the
   default calendars' events read for the R14 mirror (ceil(N / 20) `$batch`) and the
   events POSTed (ceil(N / 20) `$batch` more, N POST items): measured against that
   minimum;
2. again: every event is `created`, so no Graph write;
3. "N moves": Emply moves every interview a day later (the state exported, edited and
   imported again, as an operator would); the run PATCHes each event's start and end:
   ceil(N / 20) `$batch` of PATCH items on top of the two reads, the minimum;
4. "N cancels": Emply cancels every interview; the run sends Graph's `cancel` for each
   (attendees are told): ceil(N / 20) `$batch` of cancel items on top of the two reads.

Prints a table and writes ``bench/out/event_push.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import math
from collections.abc import Callable
from typing import Any

from bench import generate, harness
from bench.harness import BATCH, GROUP, import_doc
from bench.run import Simulator
from bench.writeback import emply as linked_users
from bench.writeback import tenant as plain_tenant

MODULE = "bench.event_push"
POST = "POST /users/{id}/calendar/events"
PATCH = "PATCH /users/{id}/events/{eid}"
CANCEL = "POST /users/{id}/events/{eid}/cancel"
LOOKUP = "GET /users/{id}/events"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return harness.parse_args(MODULE, __doc__, users=2_000, out="event_push.json", argv=argv)


def tenant(users: int) -> dict[str, Any]:
    out = plain_tenant(users)
    for person in out["users"]:
        person["calendars"] = [{"id": "cal-main", "name": "Calendar",
                                "isDefaultCalendar": True, "canEdit": True, "events": []}]
    return out


def _day(days_later: int) -> str:
    """A day inside R14's window, so the sync's own events are read back and left out."""
    return (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=days_later)).isoformat()


def emply(entra: dict[str, Any]) -> dict[str, Any]:
    doc = linked_users(entra)
    doc["settings"]["calendarSync"] = True
    doc["outboundEvents"] = [
        {"id": f"o-{i}", "userId": f"u-{i}", "subject": f"Interview {i}",
         "start": f"{_day(3)}T09:00:00Z", "end": f"{_day(3)}T10:00:00Z",
         "attendees": [{"email": f"candidate{i}@fabrikam.com", "name": f"Candidate {i}"}]}
        for i in range(len(entra["users"]))]
    return doc


async def edit_events(storage: str, change: Callable[[dict[str, Any]], None]) -> None:
    """Emply's change to every outbound event: the state exported, each event edited,
    imported again (the sync's fields travel with the export)."""
    from shared import store as store_mod

    async with store_mod.open_store(connection_string=storage) as store:
        doc = await store.export_document()
        for event in doc["outboundEvents"]:
            change(event)
        await store.import_document(doc, replace=True)


def move(event: dict[str, Any]) -> None:
    event.update(start=f"{_day(4)}T09:00:00Z", end=f"{_day(4)}T10:00:00Z")


def cancel(event: dict[str, Any]) -> None:
    event["cancelled"] = True


def run(name: str, sim: Simulator, storage: str) -> dict[str, Any]:
    return harness.measure(name, sim, storage, {"posts": POST, "patches": PATCH,
                                                "cancels": CANCEL, "lookups": LOOKUP})


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    entra = tenant(args.users)
    out, tenant_file, results = harness.start(MODULE, args, entra, "event-push-tenant.json")
    writes = math.ceil(args.users / BATCH)
    results["minimumBatches"] = 3 * writes
    with harness.services(tenant_file, args.latency_ms) as (sim, storage):
        asyncio.run(import_doc(storage, emply(entra), replace=True))
        results["push"] = run("outbound events pushed", sim, storage)
        results["again"] = run("nothing left to push", sim, storage)
        asyncio.run(edit_events(storage, move))
        results["moves"] = run(f"{args.users} moves", sim, storage)
        asyncio.run(edit_events(storage, cancel))
        results["cancels"] = run(f"{args.users} cancels", sim, storage)
    push, moves, cancels = results["push"], results["moves"], results["cancels"]
    results["checks"] = {
        "batchesAtMinimum": push["batches"] == results["minimumBatches"],
        "everyEventPushedOnce": push["counts"].get("event_push") == args.users
        and push["posts"] == args.users,
        "secondRunWritesNothing": results["again"]["posts"] == results["again"]["patches"]
        == results["again"]["cancels"] == 0,
        "movesPatchedOnceAtMinimum": moves["patches"] == args.users
        and moves["batches"] == results["minimumBatches"] and moves["posts"] == 0,
        "cancelsSentOnceAtMinimum": cancels["cancels"] == args.users
        and cancels["batches"] == results["minimumBatches"] and cancels["posts"] == 0,
        "nothingLookedUp": push["lookups"] == moves["lookups"] == cancels["lookups"] == 0,
    }
    print(f"\n{args.users} outbound events, one per user (simulator latency "
          f"{args.latency_ms:g} ms; group {GROUP}, domain {generate.DOMAIN})")
    print(f"  minimum $batch    ceil({args.users}/20) calendar lists + as many event reads "
          f"(R14) + as many for the writes = {results['minimumBatches']}")
    for name, key, figure in (("push", "push", "posts"), ("moves", "moves", "patches"),
                              ("cancels", "cancels", "cancels")):
        result = results[key]
        print(f"  {name:<17} {result['batches']} $batch, {result[figure]} {figure} items; "
              f"{result['wallSeconds']} s wall, the sync's own CPU {result['cpuSeconds']} s")
    print(f"  nothing left      {results['again']['wallSeconds']} s, "
          f"{results['again']['posts']} POSTs")
    return harness.finish(out, results)


if __name__ == "__main__":
    raise SystemExit(main())
