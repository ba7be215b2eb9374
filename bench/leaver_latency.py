"""Leaver latency with Graph change notifications (README "Leavers in minutes").

    .venv/bin/python -m bench.leaver_latency [--trials 20] [--users 200] [--debounce 60]
                                             [--delta-lag 0]

Starts Azurite and the Graph simulator, syncs a tenant of `--users` staff, turns
notifications on and lets the app create its subscriptions (Graph's handshake against a
local HTTP server that calls the real `graph_notifications` function). Then, per trial:
remove one user from all groups (`PUT /_sim/tenant`, which delivers Graph's change
notification), and time until the store shows that user deactivated (polling
`GET /api/users/{id}` through the real function). p50/p95/max over the trials.

The Functions host's queue trigger is stood in for by a local worker thread polling the
Azurite notification queue every 2 s (host.json's `maxPollingInterval`) and handing
each message to the real `run_notified_sync` function. Trials follow each other at
once by default (`--spacing back-to-back`), so every trial after the first lands inside
the previous run's debounce window and waits for the trailing run: the worst case. The
first trial is the leading edge (an isolated leaver). `--spacing independent` waits out
the debounce window before each trial, so each leaver is on its own, as leavers usually
are (a burst of leavers shares one trailing run instead).

`--delta-lag S` makes Graph's delta show each change only S seconds after its
notification went out (the simulator's `deltaLagSeconds`; concepts/delta-query-overview.md,
"processing delays"): a notification whose delta round shows nothing is then looked at
again after `EMPLY_SYNC_NOTIFICATION_RECHECK_SECONDS` (15 s, doubled each time, at most
`EMPLY_SYNC_NOTIFICATION_RECHECKS` = 3 times) before it is dropped.

Last, notifications off: a leaver's notification is dropped, no run happens within
`--off-wait` seconds and the user stays active until a timer run deactivates them.
Writes bench/out/leaver_latency-<spacing>[-lag<S>].json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from shared import config
from shared.app import boundary
from shared.notify import renewal
from tests.e2e import tenants as t
from tests.e2e.conftest import World
from tests.e2e.test_http import function, request
from tests.support import run_queue as rq
from tests.support.azurite import start_azurite
from tests.support.notify_server import notify_server
from tests.support.simulator import running_simulator

OUT = Path(__file__).resolve().parent / "out"
POLL_SECONDS = 2.0  # host.json extensions.queues.maxPollingInterval
Q = config.NOTIFY_QUEUE_NAME


class Worker(threading.Thread):
    """A queue trigger's stand-in: receive from `queue`, run `function_name`, delete (by
    default the notifications' queue and its function)."""

    def __init__(self, connection_string: str, function_name: str = "run_notified_sync",
                 queue: str = Q) -> None:
        super().__init__(daemon=True, name=f"{queue}-worker")
        self.connection_string = connection_string
        self.function_name = function_name
        self.queue = queue
        self.stop = threading.Event()

    def run(self) -> None:
        handler = function(self.function_name)
        while not self.stop.is_set():
            delivery = rq.receive(self.connection_string, self.queue)
            if delivery is None:
                self.stop.wait(POLL_SECONDS)
                continue
            asyncio.run(handler(delivery.message))
            rq.complete(self.connection_string, delivery, self.queue)


def status_of(emply_id: str) -> str:
    response = asyncio.run(function("get_user")(
        request("GET", f"/api/users/{emply_id}", route_params={"id": emply_id})))
    return str(json.loads(response.get_body())["status"])


def remove(world: World, user_id: str) -> None:
    tenant = world.sim.tenant()
    for group in tenant["groups"]:
        group["members"] = [m for m in group["members"] if m != user_id]
    world.sim.put_tenant(tenant)


def wait_deactivated(emply_id: str, timeout: float) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if status_of(emply_id) == "deactivated":
            return time.monotonic() - started
        time.sleep(0.25)
    return None


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--debounce", type=int,
                        default=config.DEFAULT_NOTIFICATION_DEBOUNCE_SECONDS)
    parser.add_argument("--off-wait", type=float, default=15.0)
    parser.add_argument("--delta-lag", type=float, default=0.0,
                        help="seconds Graph's delta lags each change notification")
    parser.add_argument("--spacing", choices=("back-to-back", "independent"),
                        default="back-to-back",
                        help="trials at once after each other (worst case) or each after "
                             "the debounce window has passed")
    return parser.parse_args(argv)


def run_trials(world: World, args: argparse.Namespace, people: list[dict[str, Any]],
               ids: dict[str, str]) -> list[float]:
    """Each trial's latency: one leaver removed, until the store shows them deactivated."""
    latencies: list[float] = []
    for trial in range(args.trials):
        leaver = people[trial]["id"]
        if trial and args.spacing == "independent":
            time.sleep(args.debounce + POLL_SECONDS)  # the last run's window is over
        started = time.monotonic()
        remove(world, leaver)
        timeout = args.debounce + 120 + 8 * args.delta_lag
        waited = wait_deactivated(ids[leaver], timeout=timeout)
        if waited is None:
            print(f"trial {trial + 1}: NOT deactivated within {timeout:.0f} s")
            continue
        latencies.append(time.monotonic() - started)  # the PUT's delivery included
        print(f"trial {trial + 1}: {latencies[-1]:.1f} s")
    return latencies


def notifications_off(world: World, args: argparse.Namespace, leaver: str, emply_id: str
                      ) -> dict[str, Any]:
    """Notifications off: the route drops the notification, nothing runs until the
    timer's run."""
    os.environ[config.NOTIFICATIONS] = "false"
    remove(world, leaver)
    wait = max(args.off_wait, args.delta_lag + 2)  # so the timer run's delta shows it
    time.sleep(wait)
    queued = rq.count(world.azurite.connection_string, Q)
    status = status_of(emply_id)
    timer_report = asyncio.run(boundary.sync(trigger="timer"))
    return {"queuedAfterNotification": queued, "statusAfterWait": status,
            "waitSeconds": wait, "timerRun": timer_report["counts"],
            "statusAfterTimer": status_of(emply_id)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    people = t.staff(args.users)
    tenant = t.tenant(people, {t.G_EMPLOYEE: [p["id"] for p in people], t.G_HR: []})
    with start_azurite() as azurite, tempfile.TemporaryDirectory() as tmp, \
            running_simulator(tenant) as sim, notify_server() as server:
        os.environ.update({
            config.STORAGE_CONNECTION_STRING: azurite.connection_string,
            config.GRAPH_URL: sim.url, config.NOTIFICATIONS: "true",
            config.PUBLIC_URL: server.base, config.NOTIFICATION_KEY: "bench-key",
            config.NOTIFICATION_DEBOUNCE: str(args.debounce)})
        world = World(azurite, sim, Path(tmp))
        world.import_state(t.emply_state(deactivationGuard={"maxCount": 1000,
                                                            "maxPercent": 100}))
        world.ok("sync")
        if args.delta_lag:
            world.sim.set_quirks(deltaLagSeconds=args.delta_lag)
        ids = {u["entraId"]: u["id"] for u in world.export()["users"]}
        print(f"synced {len(ids)} users; subscriptions: {asyncio.run(renewal.keep())}")
        worker = Worker(azurite.connection_string)
        worker.start()
        latencies = run_trials(world, args, people, ids)
        worker.stop.set()
        worker.join(30)
        off_leaver = people[args.trials]["id"]
        off = notifications_off(world, args, off_leaver, ids[off_leaver])
    result: dict[str, Any] = {
        "users": args.users, "trials": args.trials, "debounceSeconds": args.debounce,
        "spacing": args.spacing, "deltaLagSeconds": args.delta_lag,
        "recheck": {"firstSeconds": config.DEFAULT_NOTIFICATION_RECHECK_SECONDS,
                    "atMost": config.DEFAULT_NOTIFICATION_RECHECKS},
        "deactivated": len(latencies),
        "p50": round(statistics.median(latencies), 1) if latencies else None,
        "p95": round(percentile(latencies, 0.95), 1) if latencies else None,
        "max": round(max(latencies), 1) if latencies else None,
        "first": round(latencies[0], 1) if latencies else None,
        "workerPollSeconds": POLL_SECONDS,
        "off": off,
    }
    OUT.mkdir(exist_ok=True)
    lag = f"-lag{args.delta_lag:g}" if args.delta_lag else ""
    (OUT / f"leaver_latency-{args.spacing}{lag}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0 if len(latencies) == args.trials else 1


if __name__ == "__main__":
    raise SystemExit(main())
