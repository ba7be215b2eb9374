"""The scale benchmark: ``python -m bench.run [--users N] [--groups G] [--latency-ms L]``.

Generates a tenant and an Emply state (`bench.generate`), starts Azurite and the
Graph simulator (a subprocess with ``--latency-ms``), imports the state, then
measures three syncs through `shared.run.pipeline.run_sync`, each in a fresh process
(`bench.child`, for a clean peak RSS): the initial sync, a no-change sync, and a
sync after 1% churn (PUT /_sim/tenant). Then two baselines: msgraph-sdk's
generated models against the adapter's raw-JSON path on ``--sdk-users`` users,
and the floor (raw JSON paging with httpx plus the initial sync's entity count
written to the same Azurite in full 100-entity batches). Prints a table and
writes ``bench/out/results.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench import floor, generate, sdk_baseline
from graph_simulator.delta import GROUP_MEMBERS_PER_PAGE

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
sys.path.insert(0, str(ROOT))

from tests.support.azurite import start_azurite, stop_process  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--groups", type=int, default=20)
    parser.add_argument("--latency-ms", type=float, default=20)
    parser.add_argument("--sdk-users", type=int, default=10_000,
                        help="users read through msgraph-sdk's models (baseline a)")
    parser.add_argument("--churn", default=None,
                        help="comma-separated fractions of the users changed, one run each "
                        "after the last (default 0.001,0.01,0.1; from 1,000,000 users 0.001)")
    parser.add_argument("--out", default=str(OUT / "results.json"))
    parser.add_argument("--skip-baselines", action="store_true")
    parser.add_argument("--rss-target-mb", type=float, default=None,
                        help="peak RSS every run must stay under (default 256; from "
                        "1,000,000 users 1536)")
    parser.add_argument("--floor-target", type=float, default=None,
                        help="initial wall / like-for-like floor (default 1.5; from "
                        "1,000,000 users 1.0)")
    args = parser.parse_args(argv)
    large = args.users >= 1_000_000
    if args.churn is None:
        args.churn = "0.001" if large else "0.001,0.01,0.1"
    args.churn = [float(f) for f in str(args.churn).split(",") if f.strip()]
    if args.rss_target_mb is None:
        args.rss_target_mb = 1536.0 if large else 256.0
    if args.floor_target is None:
        args.floor_target = 1.0 if large else 1.5
    return args


CHURN_CPU_TARGETS = {0.001: 0.3, 0.01: 1.0}
"""Churn fraction → the sync's own CPU seconds it must stay under (at 100,000 users)."""


def churn_name(fraction: float) -> str:
    return f"churn {fraction * 100:g}%"


class Simulator:
    def __init__(self, tenant_file: Path, latency_ms: float) -> None:
        exe = Path(sys.executable).with_name("emply-sync")
        cmd = ([str(exe)] if exe.exists() else [sys.executable, "-m", "shared.cli"])
        self.process = subprocess.Popen(
            [*cmd, "simulator", "--tenant", str(tenant_file), "--port", "0",
             "--latency-ms", str(latency_ms)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if "listening on" not in line:
            self.process.kill()
            _, err = self.process.communicate()
            raise RuntimeError(f"simulator did not start: {line}{err}")
        self.url = line.rsplit(" ", 1)[1].strip()
        self.base = self.url.rsplit("/v1.0", 1)[0]
        self.http = httpx.Client(base_url=self.base, timeout=600)

    def put_tenant(self, tenant: dict[str, Any]) -> None:
        self.http.put("/_sim/tenant", content=json.dumps(tenant)).raise_for_status()

    def requests(self) -> dict[str, Any]:
        result: dict[str, Any] = self.http.get("/_sim/requests").json()
        return result

    def reset(self) -> None:
        self.http.delete("/_sim/requests").raise_for_status()

    def stop(self) -> None:
        self.http.close()
        stop_process(self.process)


def pages(n: int, size: int = 999) -> int:
    return max(1, math.ceil(n / size))


def minimum_requests(full: bool, users: int, groups: int, members: int = 0
                     ) -> dict[str, int]:
    """One request per page at the largest page size, plus /organization. With
    ``full`` False, ``users``/``groups`` are the changed objects of a delta round;
    ``members`` the `members@delta` entries, which Graph pages too (the simulator at most
    `GROUP_MEMBERS_PER_PAGE` a page)."""
    del full
    return {"/organization": 1, "/users/delta": pages(users),
            "/groups/delta": max(pages(groups), pages(members, GROUP_MEMBERS_PER_PAGE))}


def member_entries(before: dict[str, Any] | None, after: dict[str, Any]) -> int:
    """The `members@delta` entries of the round from `before` (None: the first) to
    `after`: every membership, or those added and removed."""
    old = {g["id"]: set(g["members"]) for g in (before or {"groups": []})["groups"]}
    return sum(len(set(g["members"]) ^ old.get(g["id"], set())) for g in after["groups"])


def sync_in_child(storage: str, graph_url: str, key: str | None = None,
                  dry_run: bool = False) -> dict[str, Any]:
    """A run in a fresh process (`bench.child`); with `key`, one user now."""
    wall0 = time.perf_counter()
    extra = [] if key is None else [key, *(["dry"] if dry_run else [])]
    proc = subprocess.run([sys.executable, "-m", "bench.child", storage, graph_url, *extra],
                          capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"sync failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["processWallSeconds"] = round(time.perf_counter() - wall0, 3)
    return result


def measure(name: str, sim: Simulator, storage: str, minimum: dict[str, int]) -> dict[str, Any]:
    sim.reset()
    print(f"[bench] {name} sync ...", flush=True)
    load_before = os.getloadavg()[0]
    result = sync_in_child(storage, sim.url)
    result["loadAverage"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    requests = sim.requests()
    result["graphRequests"] = {"total": requests["total"], "byEndpoint": requests["byEndpoint"]}
    result["graphMinimum"] = {"total": sum(minimum.values()), "byEndpoint": minimum}
    # Entities written in batches: at best ceil(entities/100) transactions per partition
    # (the run index row, the lease and the version marker are single operations).
    parts = result["batchesByPartition"].values()
    result["tableMinimumBatches"] = sum(math.ceil(p["entities"] / 100) for p in parts)
    result["tablePartitions"] = len(parts)
    # The partition furthest over its own minimum: (batches, ceil(entities/100), entities).
    worst = max(parts, key=lambda p: p["batches"] / math.ceil(p["entities"] / 100),
                default=None)
    result["tableWorstPartition"] = None if worst is None else {
        "batches": worst["batches"], "minimum": math.ceil(worst["entities"] / 100),
        "entities": worst["entities"]}
    print(f"[bench] {name}: {result['wallSeconds']} s wall, {result['cpuSeconds']} s CPU, "
          f"{result['peakRssMb']} MB, status {result['status']}, counts {result['counts']}",
          flush=True)
    return result


def machine() -> dict[str, Any]:
    cpu = ""
    with open("/proc/cpuinfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with open("/proc/meminfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("MemTotal"):
                mem_kb = int(line.split()[1])
    return {"nproc": os.cpu_count(), "cpu": cpu, "ramGb": round(mem_kb / 1024 / 1024, 1),
            "python": platform.python_version()}


async def import_state(storage: str, doc: dict[str, Any]) -> dict[str, Any]:
    from shared import store as store_mod

    async with store_mod.open_store(connection_string=storage) as store:
        t0 = time.perf_counter()
        counts = await store.import_document(doc, replace=True)
        return {"seconds": round(time.perf_counter() - t0, 2), "counts": counts}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "command": "python -m bench.run " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in (
                ("users", args.users), ("groups", args.groups),
                ("latency_ms", args.latency_ms))),
        "machine": machine(),
        "params": vars(args),
    }
    print(f"[bench] generating {args.users} users, {args.groups} groups", flush=True)
    tenant = generate.tenant(args.users, args.groups)
    doc = generate.emply(args.users, args.groups)
    tenant_file = out.parent / "tenant.json"
    tenant_file.write_text(json.dumps(tenant))
    with start_azurite(timeout=60) as azurite:
        sim = Simulator(tenant_file, args.latency_ms)
        try:
            storage = azurite.connection_string
            print("[bench] importing the Emply state", flush=True)
            results["import"] = asyncio.run(import_state(storage, doc))
            runs: dict[str, Any] = {}
            runs["initial"] = measure("initial", sim, storage,
                                      minimum_requests(True, args.users, args.groups,
                                                       member_entries(None, tenant)))
            runs["noChange"] = measure("no-change", sim, storage,
                                       minimum_requests(False, 0, 0))
            churned = tenant
            for round_, fraction in enumerate(args.churn):
                before = churned
                churned, what = generate.churn(before, fraction, seed=2 + round_)
                changed_users = what["joins"] + what["disabled"]
                changed_groups = len({
                    g["id"] for g, old in zip(churned["groups"], before["groups"],
                                              strict=True)
                    if g["members"] != old["members"]})
                sim.put_tenant(churned)
                name = churn_name(fraction)
                runs[name] = measure(name, sim, storage,
                                     minimum_requests(False, changed_users, changed_groups,
                                                      member_entries(before, churned)))
                runs[name]["churn"] = {**what, "fraction": fraction}
            results["runs"] = runs
            if not args.skip_baselines:
                print(f"[bench] baseline (a): msgraph-sdk models vs raw JSON on "
                      f"{args.sdk_users} users", flush=True)
                results["sdkBaseline"] = asyncio.run(
                    sdk_baseline.compare(sim.url, min(args.sdk_users, len(churned["users"]))))
                written = runs["initial"]["store"]["entities_written"]
                replaced = runs["initial"]["store"]["entities_replaced"]
                existing = sum(results["import"]["counts"].values())
                print(f"[bench] baseline (b): floor, raw paging + {written} new entities",
                      flush=True)
                results["floorInsertOnly"] = asyncio.run(floor.measure(
                    sim.url, storage, written, table="floor" + uuid.uuid4().hex[:8]))
                print(f"[bench] baseline (b): floor like for like, raw paging + {written} "
                      f"entities, {replaced} of them replacing some of {existing} existing",
                      flush=True)
                results["floor"] = asyncio.run(floor.measure(
                    sim.url, storage, written, table="floor" + uuid.uuid4().hex[:8],
                    existing=existing, replaced=replaced))
                results["initialToFloor"] = round(
                    runs["initial"]["wallSeconds"] / results["floor"]["wallSeconds"], 2)
                results["initialToInsertOnlyFloor"] = round(
                    runs["initial"]["wallSeconds"]
                    / results["floorInsertOnly"]["wallSeconds"], 2)
        finally:
            sim.stop()
    results["targets"] = check_targets(results)
    out.write_text(json.dumps(results, indent=2))
    print_table(results)
    print(f"\nwritten {out}")
    return 0


def check_targets(results: dict[str, Any]) -> dict[str, Any]:
    runs = results["runs"]
    params = results["params"]
    rss = params["rss_target_mb"]
    checks: dict[str, Any] = {
        "initial <= 120 s": runs["initial"]["wallSeconds"] <= 120,
        "no-change <= 3 s": runs["noChange"]["wallSeconds"] <= 3,
        f"peak RSS <= {rss:g} MB": all(r["peakRssMb"] <= rss for r in runs.values()),
        "Graph requests <= 1.1 x minimum": all(
            r["graphRequests"]["total"] <= 1.1 * r["graphMinimum"]["total"]
            for r in runs.values()),
        "Table batches <= 1.1 x ceil(entities/100) per partition": all(
            p["batches"] <= 1.1 * math.ceil(p["entities"] / 100)
            for r in runs.values() for p in r["batchesByPartition"].values()),
    }
    for fraction in params["churn"]:
        run = runs.get(churn_name(fraction))
        if run is None:
            continue
        if fraction == 0.01:
            checks["churn 1% <= 10 s"] = run["wallSeconds"] <= 10
        target = CHURN_CPU_TARGETS.get(fraction)
        if target is not None and params["users"] <= 100_000:
            checks[f"{churn_name(fraction)} <= {target:g} s CPU"] = run["cpuSeconds"] <= target
    if "initialToFloor" in results:
        factor = params["floor_target"]
        checks[f"initial <= {factor:g} x floor"] = results["initialToFloor"] <= factor
    return checks


def print_table(results: dict[str, Any]) -> None:
    head = (f"{'run':<12}{'wall s':>8}{'cpu s':>8}{'RSS MB':>8}{'Graph req':>11}"
            f"{'min':>5}{'tx':>7}{'batches':>8}{'min':>6}{'parts':>6}{'entities':>9}  changes")
    print("\n" + head)
    print("-" * len(head))
    for name, r in results["runs"].items():
        print(f"{name:<12}{r['wallSeconds']:>8.2f}{r['cpuSeconds']:>8.2f}{r['peakRssMb']:>8.0f}"
              f"{r['graphRequests']['total']:>11}{r['graphMinimum']['total']:>5}"
              f"{r['store']['transactions']:>7}{r['store']['batches']:>8}"
              f"{r['tableMinimumBatches']:>6}{r['tablePartitions']:>6}"
              f"{r['store']['entities_written']:>9}  "
              + ", ".join(f"{k} {v}" for k, v in sorted(r["counts"].items())))
    for name, r in results["runs"].items():
        print(f"  {name} Graph requests by endpoint: {r['graphRequests']['byEndpoint']}")
    for name, r in results["runs"].items():
        worst = r["tableWorstPartition"]
        print(f"  {name} Table batches: {r['store']['batches']} in {r['tablePartitions']} "
              f"partitions, sum of ceil(entities in partition/100) = "
              f"{r['tableMinimumBatches']}"
              + (f"; worst partition {worst['batches']} batches for {worst['entities']} "
                 f"entities (minimum {worst['minimum']})" if worst else ""))
    if "sdkBaseline" in results:
        s = results["sdkBaseline"]
        print(f"\nbaseline (a), {s['users']} users: msgraph-sdk models "
              f"{s['sdk']['wallSeconds']:.2f} s wall / {s['sdk']['cpuSeconds']:.2f} s CPU; "
              f"raw JSON (shared.graph) {s['raw']['wallSeconds']:.2f} s / "
              f"{s['raw']['cpuSeconds']:.2f} s CPU; ratio {s['cpuRatio']}x CPU")
    if "floor" in results:
        f = results["floorInsertOnly"]
        print(f"baseline (b), floor of new entities into an empty table: {f['wallSeconds']:.2f}"
              f" s (Graph paging {f['readSeconds']:.2f} s, {f['requests']} requests; "
              f"{f['entities']} entities in {f['batches']} batches over {f['partitions']} "
              f"partitions {f['writeSeconds']:.2f} s); initial sync = "
              f"{results['initialToInsertOnlyFloor']} x this floor")
        f = results["floor"]
        print(f"baseline (b), floor like for like: {f['wallSeconds']:.2f} s (Graph paging "
              f"{f['readSeconds']:.2f} s; {f['entities']} entities, {f['replaced']} of them "
              f"replacing entities of a table that held {f['existing']}, "
              f"{f['writeSeconds']:.2f} s); initial sync = {results['initialToFloor']} x floor")
    print("\ntargets: " + ", ".join(f"{k}: {'ok' if v else 'MISSED'}"
                                    for k, v in results["targets"].items()))


if __name__ == "__main__":
    raise SystemExit(main())
