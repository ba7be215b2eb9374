"""Reliability figures (README "Reliability"): faults injected into real runs.

    .venv/bin/python -m bench.reliability [--kills 20] [--users 2000] [--fault-rounds 30]
                                          [--imports 300] [--hostile 500] [--races 20]
                                          [--patches 200] [--replays 10]

Starts Azurite and the Graph simulator, then runs the harness of
`tests/reliability/harness.py` with these counts: kill -9 at random points of
successive `emply-sync sync` processes on a tenant of `--users` users (a third of them
manual Emply users to link), Graph faults during runs with tenant changes between them,
and generated malformed Emply state files; then the adversarial classes of
`tests/reliability/adversarial.py` (issue 24): hostile HTTP requests generated from the
OpenAPI document, rounds of writers racing for one username / Entra id / new id,
concurrent PATCHes checked against storage, and rounds of one lifecycle notification
delivered 10 times. Prints the table and writes bench/out/reliability.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings

from shared import config
from tests.e2e import tenants as t
from tests.e2e.conftest import World, wipe
from tests.e2e.test_openapi import hostile_requests
from tests.reliability import adversarial
from tests.reliability import harness as h
from tests.reliability.test_reliability import _documents
from tests.support.azurite import start_azurite
from tests.support.notify_server import notify_server
from tests.support.simulator import running_simulator

OUT = Path(__file__).resolve().parent / "out"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--fault-rounds", type=int, default=30)
    parser.add_argument("--imports", type=int, default=300)
    parser.add_argument("--hostile", type=int, default=500)
    parser.add_argument("--races", type=int, default=20)
    parser.add_argument("--patches", type=int, default=200)
    parser.add_argument("--replays", type=int, default=10)
    args = parser.parse_args(argv)
    tally = h.Tally()
    started = time.monotonic()
    with start_azurite() as azurite, tempfile.TemporaryDirectory() as tmp:
        os.environ[config.STORAGE_CONNECTION_STRING] = azurite.connection_string

        @contextlib.contextmanager
        def world_of(tenant: dict[str, Any], latency_ms: float = 0) -> Iterator[World]:
            wipe(azurite.connection_string)
            with running_simulator(tenant, latency_ms=latency_ms) as sim:
                os.environ[config.GRAPH_URL] = sim.url
                yield World(azurite, sim, Path(tmp))

        tenant = h.staff_tenant(args.users)
        manual = h.manual_users(tenant)
        with world_of(tenant, latency_ms=5) as world:
            world.import_state(t.emply_state(users=manual))
            tenant = copy.deepcopy(tenant)
            h.kill_runs(world, args.kills, seed=1, tally=tally, tenant=tenant,
                        window_s=(0.3, 2.0))
            world.sync()
            ids = {u["id"] for u in manual}
            h.check_world(world, tenant, ids, tally, "after the kills")
            h.converged(world, tally, "after the kills")
            h.no_run_left_running(world, tally, "after the kills")
            print(f"[reliability] {tally.kills} kills ({tally.kills_mid_run} mid-run): "
                  f"lost {tally.lost}, wrong {tally.wrong}", file=sys.stderr)

        small = h.staff_tenant(200)
        small_manual = h.manual_users(small)
        with world_of(small) as world:
            world.import_state(t.emply_state(users=small_manual))
            world.sync()
            h.fault_rounds(world, small, {u["id"] for u in small_manual}, tally,
                           rounds=args.fault_rounds, seed=2)
            print(f"[reliability] {tally.faults} fault rounds: lost {tally.lost}, "
                  f"wrong {tally.wrong}", file=sys.stderr)

        if args.imports > 0:
            with world_of(h.staff_tenant(5)) as world:
                world.import_state(t.emply_state())

                @settings(max_examples=args.imports, deadline=None, database=None,
                          suppress_health_check=list(HealthCheck))
                @given(data=_documents())
                def fuzz(data: bytes) -> None:
                    h.try_import(world, data, tally)

                fuzz()
        with world_of(h.staff_tenant(5)) as world:
            _adversarial(world, args, tally)
    return _report(args, tally, started)


def _adversarial(world: World, args: argparse.Namespace, tally: h.Tally) -> None:
    """Issue 24's classes (tests/reliability/adversarial.py) on one small world."""
    world.import_state(t.emply_state([{"id": f"u-{i}", "username": f"u{i}@contoso.com",
                                       "roles": ["employee"]} for i in range(args.patches)]))
    if args.hostile > 0:
        @settings(max_examples=args.hostile, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(generated=hostile_requests())
        def attack(generated: Any) -> None:
            adversarial.hostile_request(world, generated, tally,
                                        lambda: world.ok("emply", "export"))

        attack()
    asyncio.run(adversarial.uniqueness_races(world, args.races, 6, tally))
    asyncio.run(adversarial.contended_patches(world, args.patches, tally))
    print(f"[reliability] {tally.hostile} hostile requests, {tally.races} races, "
          f"{tally.patches} contended PATCHes: wrong {tally.wrong}", file=sys.stderr)
    with notify_server() as server:
        os.environ.update({config.NOTIFICATIONS: "true", config.PUBLIC_URL: server.base,
                           config.NOTIFICATION_KEY: "reliability-bench"})
        try:
            asyncio.run(adversarial.lifecycle_replays(world, args.replays, 10, tally))
        finally:
            for name in (config.NOTIFICATIONS, config.PUBLIC_URL, config.NOTIFICATION_KEY):
                os.environ.pop(name, None)


def _report(args: argparse.Namespace, tally: h.Tally, started: float) -> int:
    figures = {
        "kills": tally.kills, "killsMidRun": tally.kills_mid_run,
        "users": args.users, "faultRounds": tally.faults,
        "malformedImports": tally.malformed, "hostileRequests": tally.hostile,
        "uniquenessRaces": tally.races, "contendedPatches": tally.patches,
        "lifecycleReplays": tally.replays, "lost": tally.lost, "wrong": tally.wrong,
        "seconds": round(time.monotonic() - started, 1), "notes": tally.notes[:50],
    }
    OUT.mkdir(exist_ok=True)
    (OUT / "reliability.json").write_text(json.dumps(figures, indent=2))
    print("| what | count | lost | wrong |\n|---|---|---|---|")
    print(f"| kill -9 during runs ({args.users} users) | {tally.kills} "
          f"({tally.kills_mid_run} mid-run) | | |")
    print(f"| Graph fault rounds (tenant changes + a fault) | {tally.faults} | | |")
    print(f"| malformed Emply state files imported | {tally.malformed} | | |")
    print(f"| hostile HTTP requests (OpenAPI-generated, one part hostile) | {tally.hostile} "
          "| | |")
    print(f"| rounds of 6 writers racing for one username / Entra id / new id | "
          f"{tally.races} | | |")
    print(f"| concurrent PATCHes, answers checked against storage | {tally.patches} | | |")
    print(f"| lifecycle notifications delivered again, handled at once | {tally.replays} "
          "| | |")
    print(f"| total | | {tally.lost} | {tally.wrong} |")
    for note in tally.notes[:20]:
        print("  -", note)
    return 0 if not (tally.lost or tally.wrong) else 1


if __name__ == "__main__":
    sys.exit(main())
