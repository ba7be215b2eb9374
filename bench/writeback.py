"""The write-back benchmark: ``python -m bench.writeback [--users N] [--latency-ms L]``.

A tenant of N linked users whose employee profiles each differ from Entra in one
field (jobTitle). Azurite and the Graph simulator (a subprocess with
``--latency-ms``) as in `bench.run`. Three syncs, each in a fresh process:

1. with ``writeBack.update`` off (reads the tenant in full; writes nothing to Graph);
2. with it on: N ``entra_update`` changes, sent as ``$batch`` requests of 20;
   measured against the minimum, ceil(N / 20) batches and N PATCH items;
3. again: nothing differs any more, so zero PATCH requests.

Prints a table and writes ``bench/out/writeback.json``.
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
from tests.support.azurite import start_azurite

GROUP = generate.group_id(1)
BATCH = 20


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.writeback", description=__doc__)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=float, default=20)
    parser.add_argument("--out", default=str(OUT / "writeback.json"))
    return parser.parse_args(argv)


def tenant(users: int) -> dict[str, Any]:
    people = [generate.entra_user(i) for i in range(users)]
    return {
        "organization": {"id": generate.TENANT_ID, "displayName": "Bench",
                         "onPremisesSyncEnabled": False,
                         "verifiedDomains": [{"name": generate.DOMAIN, "isDefault": True}]},
        "users": people,
        "groups": [{"id": GROUP, "displayName": "Everyone",
                    "members": [p["id"] for p in people]}],
    }


def settings(update: bool) -> dict[str, Any]:
    return {"enabled": True, "tenantId": generate.TENANT_ID,
            "groups": [{"groupId": GROUP, "roleId": "employee"}], "syncRoles": True,
            "defaultRoleId": "employee", "allowedDomains": [],
            "writeBack": {"create": False, "update": update, "delete": False},
            "calendarSync": False, "photoSync": False}


def emply(entra: dict[str, Any]) -> dict[str, Any]:
    """Every Entra user linked to an Emply user with an employee profile that differs
    from it in jobTitle only."""
    users, employees = [], []
    for i, person in enumerate(entra["users"]):
        users.append({
            "id": f"u-{i}", "username": person["userPrincipalName"],
            "email": person["mail"], "displayName": person["displayName"],
            "status": "active", "roles": ["employee"], "employeeId": f"e-{i}",
            "source": "entra", "entraId": person["id"], "tenantId": generate.TENANT_ID,
            "syncGroups": [GROUP], "linkedDomain": generate.DOMAIN})
        employees.append({
            "id": f"e-{i}", "email": person["mail"], "displayName": person["displayName"],
            "givenName": person["givenName"], "surname": person["surname"],
            "jobTitle": f"Title {i}", "department": person["department"],
            "mobilePhone": person["mobilePhone"], "status": "active"})
    return {"settings": settings(False),
            "roles": [{"id": "employee", "name": "Employee", "administrator": False}],
            "users": users, "employees": employees}


async def import_doc(storage: str, doc: dict[str, Any], *, replace: bool) -> None:
    from shared import store as store_mod

    async with store_mod.open_store(connection_string=storage) as store:
        await store.import_document(doc, replace=replace)


def run(name: str, sim: Simulator, storage: str) -> dict[str, Any]:
    sim.reset()
    print(f"[bench] {name} ...", flush=True)
    result = sync_in_child(storage, sim.url)
    counts = sim.requests()["byEndpoint"]
    result["graphRequests"] = counts
    result["batches"] = counts.get("POST /$batch", 0)
    result["patches"] = counts.get("PATCH /users/{id}", 0)
    print(f"[bench] {name}: {result['wallSeconds']} s, {result['batches']} $batch, "
          f"{result['patches']} PATCH, counts {result['counts']}", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    entra = tenant(args.users)
    tenant_file = out.parent / "writeback-tenant.json"
    tenant_file.write_text(json.dumps(entra))
    results: dict[str, Any] = {
        "command": f"python -m bench.writeback --users {args.users} "
                   f"--latency-ms {args.latency_ms:g}",
        "machine": machine(), "minimumBatches": math.ceil(args.users / BATCH)}
    with start_azurite(timeout=60) as azurite:
        sim = Simulator(tenant_file, args.latency_ms)
        try:
            storage = azurite.connection_string
            asyncio.run(import_doc(storage, emply(entra), replace=True))
            results["off"] = run("write-back off", sim, storage)
            asyncio.run(import_doc(storage, {"settings": settings(True)}, replace=False))
            results["writeBack"] = run("write-back on", sim, storage)
            results["again"] = run("write-back on, nothing changed", sim, storage)
        finally:
            sim.stop()
    wb = results["writeBack"]
    results["checks"] = {
        "offSendsNoWrites": results["off"]["batches"] == 0 and results["off"]["patches"] == 0,
        "batchesAtMinimum": wb["batches"] == results["minimumBatches"],
        "everyUserWritten": wb["counts"].get("entra_update") == args.users
        and wb["patches"] == args.users,
        "secondRunSendsNoPatch": results["again"]["patches"] == 0,
    }
    out.write_text(json.dumps(results, indent=2))
    print(f"\nwrite-back of {args.users} users, one changed field each "
          f"(simulator latency {args.latency_ms:g} ms)")
    print(f"  $batch requests   {wb['batches']} (minimum ceil({args.users}/20) = "
          f"{results['minimumBatches']}), PATCH items {wb['patches']}")
    print(f"  sync wall time    {wb['wallSeconds']} s, the sync's own CPU "
          f"{wb['cpuSeconds']} s (write-back off: "
          f"{results['off']['wallSeconds']} s; nothing changed: "
          f"{results['again']['wallSeconds']} s)")
    print(f"  checks            {results['checks']}")
    print(f"\nwritten {out}")
    return 0 if all(results["checks"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
