"""The photo benchmark (R16): ``python -m bench.photos [--users N] [--latency-ms L]``.

A tenant of N linked users, each with a profile photo; a third of them have an
employee profile (skipped: their photos are never read). Azurite and the Graph
simulator (a subprocess with ``--latency-ms``) as in `bench.run`.

1. Two real syncs (`shared.run.pipeline.run_sync`, each in a fresh process, the default
   schedule of 48 runs a day, so 24 slots): the first copies the photos of its slice
   (metadata and bytes), the second finds them unchanged (metadata only, no bytes).
   Measured: the photo requests against the minimum, ceil(k / 20) `$batch` requests
   for the k users of the slice (and as many again for the bytes when all are new).
2. A simulated day of checks (`shared.run.steps.photos.check` at each of the 48 ticks, the
   recorded ETags kept in memory, 1% of the photos changed at noon): how often each
   user is checked, and how many bytes are downloaded, against checking everyone
   every run.

Prints a table and writes ``bench/out/photos.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import datetime as dt
import math
import time
from typing import Any

from bench import generate, harness
from bench.harness import BATCH, BATCH_ENDPOINT, import_doc
from bench.run import Simulator

MODULE = "bench.photos"
RUNS_A_DAY = 48


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return harness.parse_args(MODULE, __doc__, users=10_000, out="photos.json", argv=argv)


def picture(i: int, version: int = 0) -> dict[str, str]:
    data = b"\xff\xd8\xff\xe0" + f"user {i} v{version} ".encode() * 40  # about 600 bytes
    return {"contentType": "image/jpeg", "base64": base64.b64encode(data).decode()}


def tenant(users: int, changed: frozenset[int] = frozenset()) -> dict[str, Any]:
    return harness.tenant([{**generate.entra_user(i), "photo": picture(i, int(i in changed))}
                           for i in range(users)])


def emply(entra: dict[str, Any]) -> dict[str, Any]:
    users, employees = [], []
    for i, person in enumerate(entra["users"]):
        employee = f"e-{i}" if i % 3 == 0 else None
        users.append(harness.linked_user(i, person, employeeId=employee))
        if employee:
            employees.append({"id": employee, "email": person["mail"], "status": "active",
                              "displayName": person["displayName"]})
    return {"settings": harness.settings(syncRoles=False, photoSync=True),
            "roles": harness.ROLES, "users": users, "employees": employees}


def run(name: str, sim: Simulator, storage: str) -> dict[str, Any]:
    result, by = harness.sync(name, sim, storage)
    result["photoRequests"] = {
        "batches": by.get(BATCH_ENDPOINT, 0), "metadata": by.get("GET /users/{id}/photo", 0),
        "bytes": by.get("GET /users/{id}/photo/$value", 0)}
    print(f"[bench] {name}: {result['wallSeconds']} s, {result['photoRequests']}, "
          f"counts {result['counts']}", flush=True)
    return result


async def day(sim: Simulator, doc: dict[str, Any], users: int) -> dict[str, Any]:
    """48 ticks of photo checks, the recorded ETags kept in memory; 1% changed at noon."""
    from shared import config, photo_sync
    from shared.graph import client as graph_client
    from shared.reconcile import model

    people = [dict(u) for u in doc["users"]]
    for person in people:
        person["photo"] = None
    entra_ids = {u["entraId"] for u in people}
    checked: collections.Counter[str] = collections.Counter()
    downloads = batches = 0
    start = dt.datetime(2026, 12, 2, tzinfo=dt.UTC)
    changed = frozenset(range(0, users, 100))
    graph = graph_client.create_graph_client(sim.url, env={})
    wall0 = time.perf_counter()
    try:
        for tick in range(RUNS_A_DAY):
            if tick == RUNS_A_DAY // 2:
                sim.put_tenant(tenant(users, changed))
            now = start + dt.timedelta(minutes=30 * tick)
            found = await photo_sync.check(graph, people, entra_ids, model.Plan(changes=()),
                                           now, schedule=config.DEFAULT_SYNC_SCHEDULE)
            plan = photo_sync.plan_with_photos(model.Plan(changes=()), found, now)
            by_id = {u["id"]: u for u in people}
            for change in plan.changes:
                if change.user_id is not None:
                    by_id[change.user_id]["photo"] = change.after["photo"]
            checked.update(t.user_id for t in found.checked)
            downloads += found.read.downloads
            batches += found.read.requests
    finally:
        await graph.aclose()
    followed = sum(1 for u in people if not u["employeeId"])
    times = collections.Counter(checked[u["id"]] for u in people if not u["employeeId"])
    changed_followed = sum(1 for i in changed if i % 3)
    return {
        "usersFollowingEntra": followed,
        "checksPerUser": {str(k): v for k, v in sorted(times.items())},
        "batches": batches,
        "downloads": downloads,
        "downloadsMinimum": followed + changed_followed,
        "everyoneEveryRunBatches": RUNS_A_DAY * math.ceil(followed / BATCH),
        "wallSeconds": round(time.perf_counter() - wall0, 2),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    entra = tenant(args.users)
    out, tenant_file, results = harness.start(MODULE, args, entra, "photos-tenant.json")
    doc = emply(entra)
    with harness.services(tenant_file, args.latency_ms) as (sim, storage):
        asyncio.run(import_doc(storage, doc))
        results["first"] = run("photo sync, first run", sim, storage)
        results["again"] = run("photo sync, nothing changed", sim, storage)
        sim.put_tenant(entra)
        results["day"] = asyncio.run(day(sim, doc, args.users))
    first, again, whole = results["first"], results["again"], results["day"]
    copied = first["counts"].get("photo_set", 0)
    minimum = math.ceil(copied / BATCH)
    results["checks"] = {
        "firstRunAtMinimum": first["photoRequests"]["batches"] == 2 * minimum
        and first["photoRequests"]["bytes"] == copied,
        "unchangedPhotosNotDownloaded": again["photoRequests"]["bytes"] == 0
        and again["counts"].get("photo_set", 0) == 0,
        "everyUserCheckedDaily": min(int(k) for k in whole["checksPerUser"]) >= 1,
        "downloadsAtMinimum": whole["downloads"] == whole["downloadsMinimum"],
    }
    print(f"\nphoto sync (R16) of {args.users} linked users, "
          f"{whole['usersFollowingEntra']} without an employee profile "
          f"(simulator latency {args.latency_ms:g} ms; 48 runs a day, 24 slots)")
    print(f"  first run       {copied} photos copied: {first['photoRequests']['batches']} "
          f"$batch (minimum 2 x ceil({copied}/20) = {2 * minimum}), "
          f"{first['photoRequests']['bytes']} downloads, sync {first['wallSeconds']} s")
    print(f"  nothing changed {again['photoRequests']['metadata']} photos checked: "
          f"{again['photoRequests']['batches']} $batch, {again['photoRequests']['bytes']} "
          f"downloads, sync {again['wallSeconds']} s")
    print(f"  one day         checks per user {whole['checksPerUser']}; "
          f"{whole['batches']} $batch (everyone every run: "
          f"{whole['everyoneEveryRunBatches']}); {whole['downloads']} downloads "
          f"(minimum {whole['downloadsMinimum']}: every photo once, the 1% changed again)")
    return harness.finish(out, results, width=16)


if __name__ == "__main__":
    raise SystemExit(main())
