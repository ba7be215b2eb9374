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
import math
from typing import Any

from bench import generate, harness
from bench.harness import BATCH, import_doc
from bench.run import Simulator

MODULE = "bench.writeback_create"
ROUNDS = 3
"""`$batch` rounds per set of 20 creates: lookup, POST /users, group add."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return harness.parse_args(MODULE, __doc__, users=1_000, out="writeback-create.json",
                              argv=argv)


def tenant() -> dict[str, Any]:
    return harness.tenant([])


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
    return {"settings": harness.settings(
        writeBack={"create": True, "update": False, "delete": False}),
        "roles": harness.ROLES, "users": people, "employees": employees}


def run(name: str, sim: Simulator, storage: str) -> dict[str, Any]:
    return harness.measure(name, sim, storage, {
        "posts": "POST /users", "groupAdds": "POST /groups/{id}/members/$ref"})


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out, tenant_file, results = harness.start(MODULE, args, tenant(),
                                              "writeback-create-tenant.json")
    minimum = ROUNDS * math.ceil(args.users / BATCH)
    results["minimumBatches"] = minimum
    with harness.services(tenant_file, args.latency_ms) as (sim, storage):
        asyncio.run(import_doc(storage, emply(args.users), replace=True))
        results["create"] = run("write-back create", sim, storage)
        results["again"] = run("write-back create, nothing left", sim, storage)
    made = results["create"]
    results["checks"] = {
        "batchesAtMinimum": made["batches"] == minimum,
        "everyUserCreatedAndLinked": made["counts"].get("entra_create") == args.users
        and made["counts"].get("link_user") == args.users and made["posts"] == args.users
        and made["groupAdds"] == args.users,
        "secondRunSendsNoPost": results["again"]["posts"] == 0
        and not results["again"]["counts"],
    }
    print(f"\nwrite-back create of {args.users} users (simulator latency "
          f"{args.latency_ms:g} ms)")
    print(f"  $batch requests   {made['batches']} (minimum {ROUNDS} x ceil({args.users}/20) = "
          f"{minimum}), POST /users items {made['posts']}, group adds {made['groupAdds']}")
    print(f"  sync wall time    {made['wallSeconds']} s, the sync's own CPU "
          f"{made['cpuSeconds']} s (next run, nothing left: "
          f"{results['again']['wallSeconds']} s)")
    return harness.finish(out, results)


if __name__ == "__main__":
    raise SystemExit(main())
