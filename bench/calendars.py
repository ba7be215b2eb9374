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
read, reported apart). Prints a table and writes ``bench/out/calendars.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

from bench import generate
from bench.run import OUT, Simulator, machine, sync_in_child
from tests.support.azurite import start_azurite

GROUP = generate.group_id(1)
BATCH = 20
CALENDARS = 2
EVENTS = 20
DELTA = "GET /users/{id}/calendars/{cid}/calendarView/delta"
LIST = "GET /users/{id}/calendars"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.calendars", description=__doc__)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=float, default=20)
    parser.add_argument("--out", default=str(OUT / "calendars.json"))
    return parser.parse_args(argv)


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
    people = [{**generate.entra_user(i), "calendars": mailbox(i, today)}
              for i in range(users)]
    return {
        "organization": {"id": generate.TENANT_ID, "displayName": "Bench",
                         "onPremisesSyncEnabled": False,
                         "verifiedDomains": [{"name": generate.DOMAIN, "isDefault": True}]},
        "users": people,
        "groups": [{"id": GROUP, "displayName": "Everyone",
                    "members": [p["id"] for p in people]}],
    }


def emply(entra: dict[str, Any]) -> dict[str, Any]:
    """Every Entra user linked, with both calendars kept and enabled (R13 added them;
    the users enabled the second)."""
    users, calendars = [], []
    for i, person in enumerate(entra["users"]):
        users.append({
            "id": f"u-{i}", "username": person["userPrincipalName"],
            "email": person["mail"], "displayName": person["displayName"],
            "status": "active", "roles": ["employee"], "source": "entra",
            "entraId": person["id"], "tenantId": generate.TENANT_ID,
            "syncGroups": [GROUP], "linkedDomain": generate.DOMAIN})
        calendars += [{"userId": f"u-{i}", "id": calendar_id(i, c),
                       "name": "Calendar" if c == 0 else f"Team {c}",
                       "isDefault": c == 0, "enabled": True} for c in range(CALENDARS)]
    settings = {"enabled": True, "tenantId": generate.TENANT_ID,
                "groups": [{"groupId": GROUP, "roleId": "employee"}], "syncRoles": True,
                "defaultRoleId": "employee", "allowedDomains": [],
                "writeBack": {"create": False, "update": False, "delete": False},
                "calendarSync": True, "photoSync": False}
    return {"settings": settings,
            "roles": [{"id": "employee", "name": "Employee", "administrator": False}],
            "users": users, "calendars": calendars}


async def import_doc(storage: str, doc: dict[str, Any]) -> None:
    from shared import store as store_mod

    async with store_mod.open_store(connection_string=storage) as store:
        await store.import_document(doc, replace=True)


def run(name: str, sim: Simulator, storage: str, users: int) -> dict[str, Any]:
    sim.reset()
    print(f"[bench] {name} ...", flush=True)
    result = sync_in_child(storage, sim.url)
    counts = sim.requests()["byEndpoint"]
    result["graphRequests"] = counts
    result["batches"] = counts.get("POST /$batch", 0)
    result["calendarItems"] = counts.get(LIST, 0)
    result["deltaItems"] = counts.get(DELTA, 0)
    result["directoryRequests"] = sum(n for k, n in counts.items()
                                      if k not in ("POST /$batch", LIST, DELTA))
    print(f"[bench] {name}: {result['wallSeconds']} s, {result['cpuSeconds']} s CPU, "
          f"{result['batches']} $batch ({result['calendarItems']} calendar lists, "
          f"{result['deltaItems']} delta pages), counts {result['counts']}", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    entra = tenant(args.users)
    tenant_file = out.parent / "calendars-tenant.json"
    tenant_file.write_text(json.dumps(entra))
    calendars = args.users * CALENDARS
    minimum = {"batches": math.ceil(args.users / BATCH) + math.ceil(calendars / BATCH),
               "calendarItems": args.users, "deltaItems": calendars}
    results: dict[str, Any] = {
        "command": f"python -m bench.calendars --users {args.users} "
                   f"--latency-ms {args.latency_ms:g}",
        "machine": machine(), "minimum": minimum}
    with start_azurite(timeout=60) as azurite:
        sim = Simulator(tenant_file, args.latency_ms)
        try:
            storage = azurite.connection_string
            asyncio.run(import_doc(storage, emply(entra)))
            del entra
            results["first"] = run("first run", sim, storage, args.users)
            results["again"] = run("no change", sim, storage, args.users)
        finally:
            sim.stop()
    first, again = results["first"], results["again"]
    results["checks"] = {
        "firstMirrorsEveryCalendar": first["counts"].get("events_mirror") == calendars,
        "firstAtMinimum": all(first[k] == v for k, v in minimum.items()),
        "noChangeAtMinimum": all(again[k] == v for k, v in minimum.items()),
        "noChangeChangesNothing": again["counts"] == {},
        "noThrottling": first["entraRead"]["throttled"] == 0
        and again["entraRead"]["throttled"] == 0,
    }
    out.write_text(json.dumps(results, indent=2))
    print(f"\ncalendar sync of {args.users} users, {CALENDARS} calendars of {EVENTS} events "
          f"each (simulator latency {args.latency_ms:g} ms)")
    for name, result in (("first run", first), ("no change", again)):
        print(f"  {name:10} $batch {result['batches']} (minimum {minimum['batches']}), "
              f"calendar lists {result['calendarItems']}, delta pages "
              f"{result['deltaItems']} (minimum {minimum['deltaItems']}), directory "
              f"{result['directoryRequests']}; wall {result['wallSeconds']} s, CPU "
              f"{result['cpuSeconds']} s, peak {result['peakRssMb']} MB")
    print(f"  checks     {results['checks']}")
    print(f"\nwritten {out}")
    return 0 if all(results["checks"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
