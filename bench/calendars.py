"""The calendar benchmark: ``python -m bench.calendars [--users N] [--latency-ms L]``.

A tenant of N linked users with calendar sync on, each with two calendars (the
default one and a second one the user enabled) of 20 events in the window. Azurite
and the Graph simulator (a subprocess with ``--latency-ms``) as in `bench.run`. Two
syncs, each in a fresh process:

1. the first run: every calendar listed (``$batch`` of 20 users) and every calendar's
   window read through ``calendarView/delta`` (``$batch`` of 20 calendars, never two
   of one mailbox in a batch): 2N ``events_mirror`` changes, 40N events written;
2. no change: the calendars listed again and one delta page per calendar, nothing
   written.

Each against the minimum Graph requests for the calendars and events: ceil(N/20)
batches listing calendars, ceil(2N/20) batches of delta pages (plus the directory
read, reported apart). Then the no-change run's Graph floor (`bench.calendar_floor`, a
fresh process): the same batches sent and parsed, nothing else, through the product's
Graph client and through bare httpx. Prints a table and writes
``bench/out/calendars.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import subprocess
import sys
from typing import Any

from bench import generate, harness
from bench.harness import BATCH, BATCH_ENDPOINT, import_doc
from bench.run import ROOT, Simulator

MODULE = "bench.calendars"
CALENDARS = 2
EVENTS = 20
DELTA = "GET /users/{id}/calendars/{cid}/calendarView/delta"
LIST = "GET /users/{id}/calendars"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return harness.parse_args(MODULE, __doc__, users=10_000, out="calendars.json", argv=argv)


def calendar_id(i: int, c: int) -> str:
    return f"cal-{i}-{c}"


def mailbox(i: int, today: dt.date) -> list[dict[str, Any]]:
    def event(c: int, e: int) -> dict[str, Any]:
        day = (today + dt.timedelta(days=e * 2)).isoformat()
        return {"id": f"ev-{i}-{c}-{e}", "subject": f"Meeting {e}", "showAs": "busy",
                "sensitivity": "private" if e == 0 else "normal",
                "start": {"dateTime": f"{day}T09:00:00", "timeZone": "UTC"},
                "end": {"dateTime": f"{day}T09:30:00", "timeZone": "UTC"}}

    return [{"id": calendar_id(i, c), "name": "Calendar" if c == 0 else f"Team {c}",
             "isDefaultCalendar": c == 0, "canEdit": True,
             "events": [event(c, e) for e in range(EVENTS)]} for c in range(CALENDARS)]


def tenant(users: int) -> dict[str, Any]:
    today = dt.datetime.now(dt.UTC).date()
    return harness.tenant([{**generate.entra_user(i), "calendars": mailbox(i, today)}
                           for i in range(users)])


def emply(entra: dict[str, Any]) -> dict[str, Any]:
    """Every Entra user linked, with both calendars kept and enabled (R13 added them;
    the users enabled the second)."""
    users, calendars = [], []
    for i, person in enumerate(entra["users"]):
        users.append(harness.linked_user(i, person))
        calendars += [{"userId": f"u-{i}", "id": calendar_id(i, c),
                       "name": "Calendar" if c == 0 else f"Team {c}",
                       "isDefault": c == 0, "enabled": True} for c in range(CALENDARS)]
    return {"settings": harness.settings(calendarSync=True), "roles": harness.ROLES,
            "users": users, "calendars": calendars}


def run(name: str, sim: Simulator, storage: str) -> dict[str, Any]:
    result = harness.measure(name, sim, storage, {"calendarItems": LIST, "deltaItems": DELTA})
    result["directoryRequests"] = sum(n for k, n in result["graphRequests"].items()
                                      if k not in (BATCH_ENDPOINT, LIST, DELTA))
    return result


def floor(storage: str, graph_url: str) -> dict[str, Any]:
    """`bench.calendar_floor` in a fresh process: its figures."""
    print("[bench] no-change Graph floor ...", flush=True)
    proc = subprocess.run([sys.executable, "-m", "bench.calendar_floor", storage, graph_url],
                          capture_output=True, text=True, cwd=ROOT, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"floor failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    entra = tenant(args.users)
    out, tenant_file, results = harness.start(MODULE, args, entra, "calendars-tenant.json")
    calendars = args.users * CALENDARS
    minimum = {"batches": math.ceil(args.users / BATCH) + math.ceil(calendars / BATCH),
               "calendarItems": args.users, "deltaItems": calendars}
    results["minimum"] = minimum
    with harness.services(tenant_file, args.latency_ms) as (sim, storage):
        asyncio.run(import_doc(storage, emply(entra)))
        del entra
        results["first"] = run("first run", sim, storage)
        results["again"] = run("no change", sim, storage)
        results["floor"] = floor(storage, sim.url)
    first, again = results["first"], results["again"]
    results["checks"] = {
        "firstMirrorsEveryCalendar": first["counts"].get("events_mirror") == calendars,
        "firstAtMinimum": all(first[k] == v for k, v in minimum.items()),
        "noChangeAtMinimum": all(again[k] == v for k, v in minimum.items()),
        "noChangeChangesNothing": again["counts"] == {},
        "noThrottling": first["entraRead"]["throttled"] == 0
        and again["entraRead"]["throttled"] == 0,
    }
    print(f"\ncalendar sync of {args.users} users, {CALENDARS} calendars of {EVENTS} events "
          f"each (simulator latency {args.latency_ms:g} ms)")
    for name, result in (("first run", first), ("no change", again)):
        print(f"  {name:10} $batch {result['batches']} (minimum {minimum['batches']}), "
              f"calendar lists {result['calendarItems']}, delta pages "
              f"{result['deltaItems']} (minimum {minimum['deltaItems']}), directory "
              f"{result['directoryRequests']}; wall {result['wallSeconds']} s, CPU "
              f"{result['cpuSeconds']} s, peak {result['peakRssMb']} MB")
    for path, label in (("sdk", "the product's Graph client"), ("httpx", "bare httpx")):
        figures = results["floor"][path]
        print(f"  floor      {figures['batches']} $batch through {label}: wall "
              f"{figures['wallSeconds']} s, CPU {figures['cpuSeconds']} s")
    return harness.finish(out, results, width=11)


if __name__ == "__main__":
    raise SystemExit(main())
