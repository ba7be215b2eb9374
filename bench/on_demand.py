"""One user now (`shared.run.on_demand`): ``python -m bench.on_demand [--users N]
[--latency-ms L]``.

A tenant of N users, all linked in Emply and members of the configured group. A full
sync first (in a fresh process, as `bench.run` measures it), so the sync's state and
delta links exist; then a new hire joins the group and a leaver leaves it, and each is
synced on its own, each in a fresh process: the new hire as a dry run, then for real
(created), then the leaver (deactivated): two real on-demand runs in a row, the second
served from the Emply index the first kept current. Then a full sync again (the
indexed run, served from that index). Azurite and the Graph simulator (a subprocess
with ``--latency-ms``) as in `bench.run`.

Measured: wall and CPU of the on-demand run, its peak RSS, and its Graph requests by
endpoint (a handful, whatever N: no delta read). Checked: each run within the HTTP
trigger's 20 s bound on its reads (the whole run is measured, so this is stricter), a
handful of Graph requests (at most 12), no delta request, the outcome expected.

Prints a table and writes ``bench/out/on_demand.json``.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from bench import generate, harness
from bench.harness import import_doc
from bench.run import Simulator, sync_in_child

MODULE = "bench.on_demand"
HTTP_BOUND_SECONDS = 20.0
MAX_REQUESTS = 12


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return harness.parse_args(MODULE, __doc__, users=10_000, out="on_demand.json", argv=argv)


def _one(name: str, sim: Simulator, storage: str, key: str, *, dry: bool = False
         ) -> dict[str, Any]:
    sim.reset()
    print(f"[bench] {name} ...", flush=True)
    result = sync_in_child(storage, sim.url, key, dry)
    counts: dict[str, int] = sim.requests()["byEndpoint"]
    result["graphRequests"] = counts
    result["requests"] = sum(counts.values())
    print(f"[bench] {name}: {result['wallSeconds']} s, {result['cpuSeconds']} s CPU, "
          f"{result['peakRssMb']} MB, {result['requests']} Graph requests, "
          f"outcome {result.get('outcome')}", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    users = args.users
    people = [generate.entra_user(i) for i in range(users + 1)]  # the last one: the new hire
    before = harness.tenant(people)
    before["groups"][0]["members"] = [p["id"] for p in people[:users]]
    out, tenant_file, results = harness.start(MODULE, args, before, "on_demand-tenant.json")
    doc = {"settings": harness.settings(
               deactivationGuard={"maxCount": 100000, "maxPercent": 100, "minCount": 10}),
           "roles": harness.ROLES,
           "users": [harness.linked_user(i, p) for i, p in enumerate(people[:users])],
           "employees": [], "calendars": [], "events": [], "outboundEvents": []}
    leaver, hire = people[0], people[users]
    with harness.services(tenant_file, args.latency_ms) as (sim, storage):
        asyncio.run(import_doc(storage, doc))
        full, _ = harness.sync("full sync", sim, storage)
        after = harness.tenant(people)
        after["groups"][0]["members"] = [p["id"] for p in people[1:]]
        sim.put_tenant(after)
        runs = {"newHireDryRun": _one("new hire, dry run", sim, storage,
                                      hire["userPrincipalName"], dry=True),
                "newHire": _one("new hire", sim, storage, hire["userPrincipalName"]),
                "leaver": _one("leaver", sim, storage, leaver["mail"])}
        again, _ = harness.sync("full sync after", sim, storage)
    expected = {"newHireDryRun": "planned", "newHire": "applied", "leaver": "applied"}
    results.update({"users": users, "fullSync": {k: full[k] for k in (
        "wallSeconds", "cpuSeconds", "peakRssMb", "status")}, "fullSyncAfter": {
        k: again[k] for k in ("wallSeconds", "cpuSeconds", "peakRssMb", "status", "counts")},
        **runs})
    results["checks"] = {
        **{f"{name} ≤ {HTTP_BOUND_SECONDS:g} s": run["wallSeconds"] <= HTTP_BOUND_SECONDS
           for name, run in runs.items()},
        **{f"{name} ≤ {MAX_REQUESTS} Graph requests, no delta": (
            run["requests"] <= MAX_REQUESTS
            and not any("delta" in e for e in run["graphRequests"]))
           for name, run in runs.items()},
        **{f"{name}: {expected[name]}": run.get("outcome") == expected[name]
           for name, run in runs.items()},
    }
    print(f"\n  {'run':<18}{'wall s':>8}{'CPU s':>8}{'RSS MB':>8}{'requests':>10}")
    for name, run in runs.items():
        print(f"  {name:<18}{run['wallSeconds']:>8}{run['cpuSeconds']:>8}"
              f"{run['peakRssMb']:>8}{run['requests']:>10}")
    print(f"  full sync after: {again['wallSeconds']} s, {again['cpuSeconds']} s CPU, "
          f"{again['peakRssMb']} MB, counts {again['counts']}")
    return harness.finish(out, results, width=40)


if __name__ == "__main__":
    raise SystemExit(main())
