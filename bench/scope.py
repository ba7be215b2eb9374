"""Memory follows the scope: ``python -m bench.scope [--users N] [--outside M]``.

Two tenants, each synced in its own Azurite and Graph simulator, each run in a fresh
process (`bench.child`, for a clean peak RSS): a tenant of ``--users`` users, all in the
configured groups (through nesting), and the same tenant with ``--outside`` more users
in groups no configured group reaches. The Emply state is the same for both
(`bench.generate.emply`). Three runs each: initial, no change, 1% churn of the users
in scope (the outside users untouched). The probe's figure is each run's peak RSS in
the larger tenant over the same run's in the smaller one; the target is at most 1.2.
Writes ``bench/out/scope.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from bench import generate
from bench.run import OUT, Simulator, import_state, machine, sync_in_child
from tests.support.azurite import start_azurite

TARGET = 1.2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.scope", description=__doc__)
    parser.add_argument("--users", type=int, default=2_000)
    parser.add_argument("--outside", type=int, default=100_000)
    parser.add_argument("--groups", type=int, default=20)
    parser.add_argument("--latency-ms", type=float, default=20)
    parser.add_argument("--out", default=str(OUT / "scope.json"))
    return parser.parse_args(argv)


def churned_in_scope(tenant: dict[str, Any], users: int) -> dict[str, Any]:
    """1% churn of the first `users` users (those in scope), the rest as they were."""
    inside = {**tenant, "users": tenant["users"][:users],
              "groups": [g for g in tenant["groups"]
                         if not g["displayName"].startswith("Elsewhere")]}
    churned, _ = generate.churn(inside, 0.01, first_new=len(tenant["users"]))
    outside_groups = [g for g in tenant["groups"] if g["displayName"].startswith("Elsewhere")]
    return {**tenant, "users": [*churned["users"], *tenant["users"][users:]],
            "groups": [*churned["groups"], *outside_groups]}


def sync_tenant(name: str, tenant: dict[str, Any], doc: dict[str, Any], users: int,
                latency_ms: float) -> dict[str, Any]:
    """Initial, no-change and churn runs of one tenant: each run's figures."""
    tenant_file = OUT / f"scope-{name}.json"
    tenant_file.write_text(json.dumps(tenant))
    runs: dict[str, Any] = {}
    with start_azurite(timeout=60) as azurite:
        sim = Simulator(tenant_file, latency_ms)
        try:
            storage = azurite.connection_string
            asyncio.run(import_state(storage, doc))
            for run in ("initial", "noChange", "churn"):
                if run == "churn":
                    sim.put_tenant(churned_in_scope(tenant, users))
                result = sync_in_child(storage, sim.url)
                runs[run] = {k: result[k] for k in ("wallSeconds", "cpuSeconds", "peakRssMb",
                                                    "status", "counts")}
                print(f"[bench] {name} {run}: {result['peakRssMb']} MB, "
                      f"{result['cpuSeconds']} s CPU, counts {result['counts']}", flush=True)
        finally:
            sim.stop()
    return runs


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = generate.emply(args.users, args.groups)
    small = generate.tenant(args.users, args.groups)
    large = generate.tenant(args.users, args.groups, outside=args.outside)
    results: dict[str, Any] = {
        "command": f"python -m bench.scope --users {args.users} --outside {args.outside}",
        "machine": machine(),
        "small": sync_tenant("small", small, doc, args.users, args.latency_ms),
        "large": sync_tenant("large", large, doc, args.users, args.latency_ms),
    }
    ratios = {run: round(results["large"][run]["peakRssMb"]
                         / results["small"][run]["peakRssMb"], 3)
              for run in results["small"]}
    results["ratios"] = ratios
    results["checks"] = {f"{run} peak RSS <= {TARGET} x": ratio <= TARGET
                         for run, ratio in ratios.items()}
    out.write_text(json.dumps(results, indent=2))
    for run, ratio in ratios.items():
        print(f"{run:<9} {results['small'][run]['peakRssMb']:>7.1f} MB in scope only, "
              f"{results['large'][run]['peakRssMb']:>7.1f} MB inside "
              f"{args.users + args.outside:,} users: {ratio} x")
    print("checks: " + ", ".join(f"{k}: {'ok' if v else 'MISSED'}"
                                 for k, v in results["checks"].items()))
    print(f"\nwritten {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
