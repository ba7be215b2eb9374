"""How soon a mailbox changed in Outlook shows in Emply with notifications on (issue 26).

    .venv/bin/python -m bench.mailbox_latency [--trials 10] [--users 50] [--debounce 60]
                                              [--spacing back-to-back|independent]
                                              [--shards queue|inline]

Starts Azurite and the Graph simulator over HTTP, syncs a tenant of `--users` staff with
calendar sync on (one calendar of one event each): the first run creates the users, the
second reads every mailbox and subscribes each to its events (Graph's handshake against
a local HTTP server that calls the real `graph_notifications` function). Then, per
trial: one user's event is renamed through Graph (`PATCH /users/{id}/events/{eid}`, as
Outlook would; the simulator delivers Graph's change notification over HTTP to the real
function, which marks the mailbox and queues a run), and the time until Emply holds the
new subject (polling `emply export`). p50/p95/max over the trials.

The Functions host's queue triggers are stood in for by local worker threads polling the
Azurite queues every 2 s (host.json's `maxPollingInterval`): the notification queue
(`run_notified_sync`) and, with `--shards queue` (infra's default), the mailbox shard
queue (`run_mailbox_shard`). `--spacing` as in `bench.leaver_latency`: back-to-back
trials land in the previous run's debounce window and wait for its trailing run (the
worst case); `independent` waits the window out first (a lone change). The simulator
delivers a notification as soon as the change is made; Graph's own delivery delay is
not in these figures. Writes bench/out/mailbox_latency-<spacing>-<shards>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.leaver_latency import POLL_SECONDS, Worker, percentile
from bench.run import machine
from shared import config
from tests.e2e import tenants as t
from tests.e2e.conftest import World
from tests.support import run_queue as rq
from tests.support.azurite import start_azurite
from tests.support.notify_server import notify_server
from tests.support.simulator import running_simulator

OUT = Path(__file__).resolve().parent / "out"
GOAL_SECONDS = 60.0


def staff(users: int) -> list[dict[str, Any]]:
    """`users` people, each with one calendar of one event tomorrow."""
    day = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).date().isoformat()

    def calendar(n: int) -> list[dict[str, Any]]:
        return [{"id": f"cal-{n}", "name": "Calendar", "isDefaultCalendar": True,
                 "canEdit": True, "events": [{
                     "id": f"ev-{n}", "subject": "Standup", "showAs": "busy",
                     "start": {"dateTime": f"{day}T09:00:00", "timeZone": "UTC"},
                     "end": {"dateTime": f"{day}T09:30:00", "timeZone": "UTC"}}]}]
    return [t.entra_user(100 + n, f"Person{n} Staff", calendars=calendar(n))
            for n in range(users)]


def subject_in_emply(world: World, event_id: str) -> str | None:
    for event in world.export().get("events", ()):
        if event["id"] == event_id:
            return str(event.get("subject"))
    return None


def wait_subject(world: World, event_id: str, subject: str, timeout: float) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if subject_in_emply(world, event_id) == subject:
            return time.monotonic() - started
        time.sleep(0.25)
    return None


def run_trials(world: World, args: argparse.Namespace, people: list[dict[str, Any]]
               ) -> list[float | None]:
    """Each trial's latency (None: not in Emply within the timeout)."""
    latencies: list[float | None] = []
    for trial in range(args.trials):
        person = people[trial % len(people)]
        n = trial % len(people)
        if trial and args.spacing == "independent":
            time.sleep(args.debounce + POLL_SECONDS)  # the last run's window is over
        subject = f"Moved, trial {trial + 1}"
        started = time.monotonic()
        answer = world.sim.graph("PATCH", f"/users/{person['id']}/events/ev-{n}",
                                 json={"subject": subject})
        assert answer.status_code == 200, answer.text
        timeout = args.debounce + 120
        waited = wait_subject(world, f"ev-{n}", subject, timeout)
        if waited is None:
            print(f"trial {trial + 1}: NOT in Emply within {timeout:.0f} s")
            latencies.append(None)
            continue
        latencies.append(time.monotonic() - started)  # the PATCH's delivery included
        print(f"trial {trial + 1}: {latencies[-1]:.1f} s")
    return latencies


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--debounce", type=int,
                        default=config.DEFAULT_NOTIFICATION_DEBOUNCE_SECONDS)
    parser.add_argument("--spacing", choices=("back-to-back", "independent"),
                        default="back-to-back")
    parser.add_argument("--shards", choices=("queue", "inline"), default="queue",
                        help="where the mailbox pass's shards run (infra's default: queue)")
    return parser.parse_args(argv)


def summary(args: argparse.Namespace, latencies: list[float | None], started_load: str
            ) -> dict[str, Any]:
    done = [x for x in latencies if x is not None]
    within = sum(x <= GOAL_SECONDS for x in done)
    return {
        "users": args.users, "trials": args.trials, "debounceSeconds": args.debounce,
        "spacing": args.spacing, "shards": args.shards,
        "inEmply": len(done), "withinGoal": within, "goalSeconds": GOAL_SECONDS,
        "p50": round(statistics.median(done), 1) if done else None,
        "p95": round(percentile(done, 0.95), 1) if done else None,
        "max": round(max(done), 1) if done else None,
        "first": round(done[0], 1) if latencies and latencies[0] is not None else None,
        "latencies": [None if x is None else round(x, 1) for x in latencies],
        "workerPollSeconds": POLL_SECONDS,
        "machine": machine(), "loadAtStart": started_load,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    people = staff(args.users)
    tenant = t.tenant(people, {t.G_EMPLOYEE: [p["id"] for p in people], t.G_HR: []})
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    with start_azurite() as azurite, tempfile.TemporaryDirectory() as tmp, \
            running_simulator(tenant) as sim, notify_server() as server:
        os.environ.update({
            config.STORAGE_CONNECTION_STRING: azurite.connection_string,
            config.GRAPH_URL: sim.url, config.NOTIFICATIONS: "true",
            config.PUBLIC_URL: server.base, config.NOTIFICATION_KEY: "bench-key",
            config.NOTIFICATION_DEBOUNCE: str(args.debounce),
            config.MAILBOX_SHARDS: args.shards})
        world = World(azurite, sim, Path(tmp), args.shards)
        world.import_state(t.emply_state(calendarSync=True))
        world.sync()  # the users created
        first = world.sync()  # every mailbox read and subscribed
        print(f"synced {args.users} users: {first['counts']}")
        while (delivery := rq.receive(azurite.connection_string,
                                      config.NOTIFY_QUEUE_NAME)) is not None:
            rq.complete(azurite.connection_string, delivery, config.NOTIFY_QUEUE_NAME)
        workers = [Worker(azurite.connection_string)]
        if args.shards == "queue":
            workers.append(Worker(azurite.connection_string, "run_mailbox_shard",
                                  config.MAILBOX_QUEUE_NAME))
        for worker in workers:
            worker.start()
        latencies = run_trials(world, args, people)
        for worker in workers:
            worker.stop.set()
            worker.join(60)
    result = summary(args, latencies, load)
    OUT.mkdir(exist_ok=True)
    (OUT / f"mailbox_latency-{args.spacing}-{args.shards}.json").write_text(
        json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0 if result["withinGoal"] == args.trials else 1


if __name__ == "__main__":
    raise SystemExit(main())
