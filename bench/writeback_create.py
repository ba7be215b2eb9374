"""The write-back create benchmark: ``python -m bench.writeback_create [--users N]``.

N Emply users with active employee profiles in the tenant's verified domain and no
Entra user (the tenant holds only the configured group). Azurite and the Graph
simulator (a subprocess with ``--latency-ms``) as in `bench.run`. Two syncs, each in a
fresh process:

1. with ``writeBack.create`` on: N ``entra_create`` changes, carried out in three
   rounds of ``$batch`` requests of 20 (look the UPN up, POST /users, add to the
   group), then N Emply links; measured against the minimum, 3 * ceil(N / 20) batches;
2. again: every user is linked, so zero POST /users.

Prints a table and writes ``bench/out/writeback-create.json``.
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
from bench.writeback import BATCH, GROUP, import_doc
from tests.support.azurite import start_azurite

ROUNDS = 3
"""`$batch` rounds per set of 20 creates: lookup, POST /users, group add."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.writeback_create",
                                     description=__doc__)
    parser.add_argument("--users", type=int, default=1_000)
    parser.add_argument("--latency-ms", type=float, default=20)
    parser.add_argument("--out", default=str(OUT / "writeback-create.json"))
    return parser.parse_args(argv)


def tenant() -> dict[str, Any]:
    return {
        "organization": {"id": generate.TENANT_ID, "displayName": "Bench",
                         "onPremisesSyncEnabled": False,
                         "verifiedDomains": [{"name": generate.DOMAIN, "isDefault": True}]},
        "users": [],
        "groups": [{"id": GROUP, "displayName": "Everyone", "members": []}],
    }


def emply(users: int) -> dict[str, Any]:
    """N unlinked Emply users, each holding an active employee profile."""
    people, employees = [], []
    for i in range(users):
        email = f"new.hire{i}@{generate.DOMAIN}"
        people.append({"id": f"u-{i}", "username": email, "email": email,
                       "displayName": f"New Hire {i}", "status": "active",
                       "roles": ["employee"], "employeeId": f"e-{i}", "source": "manual"})
        employees.append({"id": f"e-{i}", "email": email, "displayName": f"New Hire {i}",
                          "givenName": "New", "surname": f"Hire {i}",
                          "jobTitle": "Engineer", "status": "active"})
    return {"settings": {
        "enabled": True, "tenantId": generate.TENANT_ID,
        "groups": [{"groupId": GROUP, "roleId": "employee"}], "syncRoles": True,
        "defaultRoleId": "employee", "allowedDomains": [],
        "writeBack": {"create": True, "update": False, "delete": False},
        "calendarSync": False, "photoSync": False},
        "roles": [{"id": "employee", "name": "Employee", "administrator": False}],
        "users": people, "employees": employees}


def run(name: str, sim: Simulator, storage: str) -> dict[str, Any]:
    sim.reset()
    print(f"[bench] {name} ...", flush=True)
    result = sync_in_child(storage, sim.url)
    counts = sim.requests()["byEndpoint"]
    result["graphRequests"] = counts
    result["batches"] = counts.get("POST /$batch", 0)
    result["posts"] = counts.get("POST /users", 0)
    result["groupAdds"] = counts.get("POST /groups/{id}/members/$ref", 0)
    print(f"[bench] {name}: {result['wallSeconds']} s, {result['batches']} $batch, "
          f"{result['posts']} POST /users, counts {result['counts']}", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tenant_file = out.parent / "writeback-create-tenant.json"
    tenant_file.write_text(json.dumps(tenant()))
    minimum = ROUNDS * math.ceil(args.users / BATCH)
    results: dict[str, Any] = {
        "command": f"python -m bench.writeback_create --users {args.users} "
                   f"--latency-ms {args.latency_ms:g}",
        "machine": machine(), "minimumBatches": minimum}
    with start_azurite(timeout=60) as azurite:
        sim = Simulator(tenant_file, args.latency_ms)
        try:
            storage = azurite.connection_string
            asyncio.run(import_doc(storage, emply(args.users), replace=True))
            results["create"] = run("write-back create", sim, storage)
            results["again"] = run("write-back create, nothing left", sim, storage)
        finally:
            sim.stop()
    made = results["create"]
    results["checks"] = {
        "batchesAtMinimum": made["batches"] == minimum,
        "everyUserCreatedAndLinked": made["counts"].get("entra_create") == args.users
        and made["counts"].get("link_user") == args.users and made["posts"] == args.users
        and made["groupAdds"] == args.users,
        "secondRunSendsNoPost": results["again"]["posts"] == 0
        and not results["again"]["counts"],
    }
    out.write_text(json.dumps(results, indent=2))
    print(f"\nwrite-back create of {args.users} users (simulator latency "
          f"{args.latency_ms:g} ms)")
    print(f"  $batch requests   {made['batches']} (minimum {ROUNDS} x ceil({args.users}/20) = "
          f"{minimum}), POST /users items {made['posts']}, group adds {made['groupAdds']}")
    print(f"  sync wall time    {made['wallSeconds']} s, the sync's own CPU "
          f"{made['cpuSeconds']} s (next run, nothing left: "
          f"{results['again']['wallSeconds']} s)")
    print(f"  checks            {results['checks']}")
    print(f"\nwritten {out}")
    return 0 if all(results["checks"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
