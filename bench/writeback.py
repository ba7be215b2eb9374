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
import math
from typing import Any

from bench import generate, harness
from bench.harness import BATCH, import_doc
from bench.run import Simulator

MODULE = "bench.writeback"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return harness.parse_args(MODULE, __doc__, users=10_000, out="writeback.json", argv=argv)


def tenant(users: int) -> dict[str, Any]:
    return harness.tenant([generate.entra_user(i) for i in range(users)])


def settings(update: bool) -> dict[str, Any]:
    return harness.settings(writeBack={"create": False, "update": update, "delete": False})


def emply(entra: dict[str, Any]) -> dict[str, Any]:
    """Every Entra user linked to an Emply user with an employee profile that differs
    from it in jobTitle only."""
    users, employees = [], []
    for i, person in enumerate(entra["users"]):
        users.append(harness.linked_user(i, person, employeeId=f"e-{i}"))
        employees.append({
            "id": f"e-{i}", "email": person["mail"], "displayName": person["displayName"],
            "givenName": person["givenName"], "surname": person["surname"],
            "jobTitle": f"Title {i}", "department": person["department"],
            "mobilePhone": person["mobilePhone"], "status": "active"})
    return {"settings": settings(False), "roles": harness.ROLES,
            "users": users, "employees": employees}


def run(name: str, sim: Simulator, storage: str) -> dict[str, Any]:
    return harness.measure(name, sim, storage, {"patches": "PATCH /users/{id}"})


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    entra = tenant(args.users)
    out, tenant_file, results = harness.start(MODULE, args, entra, "writeback-tenant.json")
    results["minimumBatches"] = math.ceil(args.users / BATCH)
    with harness.services(tenant_file, args.latency_ms) as (sim, storage):
        asyncio.run(import_doc(storage, emply(entra), replace=True))
        results["off"] = run("write-back off", sim, storage)
        asyncio.run(import_doc(storage, {"settings": settings(True)}, replace=False))
        results["writeBack"] = run("write-back on", sim, storage)
        results["again"] = run("write-back on, nothing changed", sim, storage)
    wb = results["writeBack"]
    results["checks"] = {
        "offSendsNoWrites": results["off"]["batches"] == 0 and results["off"]["patches"] == 0,
        "batchesAtMinimum": wb["batches"] == results["minimumBatches"],
        "everyUserWritten": wb["counts"].get("entra_update") == args.users
        and wb["patches"] == args.users,
        "secondRunSendsNoPatch": results["again"]["patches"] == 0,
    }
    print(f"\nwrite-back of {args.users} users, one changed field each "
          f"(simulator latency {args.latency_ms:g} ms)")
    print(f"  $batch requests   {wb['batches']} (minimum ceil({args.users}/20) = "
          f"{results['minimumBatches']}), PATCH items {wb['patches']}")
    print(f"  sync wall time    {wb['wallSeconds']} s, the sync's own CPU "
          f"{wb['cpuSeconds']} s (write-back off: "
          f"{results['off']['wallSeconds']} s; nothing changed: "
          f"{results['again']['wallSeconds']} s)")
    return harness.finish(out, results)


if __name__ == "__main__":
    raise SystemExit(main())
