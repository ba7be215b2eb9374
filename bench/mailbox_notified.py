"""Graph requests of a run against the mailboxes that changed, with change notifications
on: ``python -m bench.mailbox_notified [--users N] [--changed 0,1,10,100]``.

A tenant of N linked users with calendar sync on, one calendar of one event each. The
run is the real pipeline (`shared.run.pipeline.run_sync`) on the in-memory store of the
tests and the Graph simulator in-process (the real msgraph-sdk pipeline, no socket), so
the figures are request counts, not times. A local HTTP server answers Graph's
validation handshake, so subscriptions are made as in Azure. Runs:

1. a first run (trigger ``cli``): every mailbox read and subscribed;
2. per count k of ``--changed``: k mailboxes marked as Graph's notifications mark them
   (`shared.run.mailboxes.notified.mark_dirty`, what `shared.notify.mailbox_inbox`
   does for an accepted notification), then a notification's run: it reads those k
   mailboxes (no sweep);
3. a scheduled run (trigger ``timer``, notifications on, 24-hour sweep): it reads its
   sweep slot, about N/24 mailboxes at the default schedule of 48 runs a day.

Against the design without notifications, where every run lists every mailbox's
calendars and reads each calendar's delta: ceil(N/20) + ceil(N/20) `$batch` at one
calendar each. Prints a table and writes ``bench/out/mailbox_notified.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from bench import harness
from bench.harness import BATCH
from bench.run import OUT, machine
from graph_simulator.inprocess import InProcessTransport
from graph_simulator.state import Simulator
from shared.graph import client as graph_client
from shared.run import context, pipeline
from shared.run.mailboxes import notified
from shared.run.mailboxes.settings import PassSettings
from tests.support.memory_store import MemoryStore

MODULE = "bench.mailbox_notified"
URL = "http://127.0.0.1:1/v1.0"
BATCH_ENDPOINT = "POST /$batch"
LIST = "GET /users/{id}/calendars"
DELTA = "GET /users/{id}/calendars/{cid}/calendarView/delta"
NOW = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__)
    parser.add_argument("--users", type=int, default=2_000)
    parser.add_argument("--changed", default="0,1,10,100")
    parser.add_argument("--out", default=str(OUT / "mailbox_notified.json"))
    return parser.parse_args(argv)


tenant = harness.calendar_tenant
emply = harness.calendar_emply


@contextmanager
def handshake_server() -> Iterator[str]:
    """Answers Graph's validation handshake (and takes whatever Graph notifies)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            answer = dict(parse_qsl(urlsplit(self.path).query)).get(
                "validationToken", "").encode()
            self.rfile.read(int(self.headers.get("content-length") or 0))
            self.send_response(200 if answer else 202)
            self.send_header("content-type", "text/plain")
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/graph/notifications"
    finally:
        server.shutdown()
        server.server_close()


def requests(sim: Simulator) -> dict[str, int]:
    return {"batches": sim.counts.get(BATCH_ENDPOINT, 0),
            "calendarLists": sim.counts.get(LIST, 0), "deltaPages": sim.counts.get(DELTA, 0)}


async def measure(users: int, changed: list[int]) -> dict[str, Any]:
    entra = tenant(users)
    ids = [str(p["id"]) for p in entra["users"]]
    sim = Simulator(entra)
    store = MemoryStore(lambda: NOW)
    await store.import_document(emply(entra))
    graph = graph_client.create_graph_client(URL, env={}, transport=InProcessTransport(sim))
    runs: list[dict[str, Any]] = []
    try:
        with handshake_server() as url:
            def deps(at: dt.datetime = NOW) -> context.Deps:
                return context.Deps(store=store, graph=graph, clock=lambda: at,
                                    mailboxes=PassSettings(notification_url=url))

            async def one(name: str, trigger: str, at: dt.datetime = NOW) -> None:
                sim.counts.clear()
                report = await pipeline.run_sync(deps(at), trigger=trigger)
                runs.append({"run": name, **requests(sim),
                             "subscriptions": sum(1 for s in sim.subscriptions.values()
                                                  if s.get("_mailbox")),
                             "counts": report["counts"]})
                print(f"[bench] {name}: {runs[-1]}", flush=True)

            await one("first run", "cli")
            for k in changed:
                for entra_id in ids[:k]:
                    await notified.mark_dirty(store.mailbox_states(), entra_id,
                                              "notification", NOW)
                await one(f"{k} notified", "notification")
            await one("scheduled (sweep slot)", "timer", NOW + dt.timedelta(minutes=30))
    finally:
        await graph.aclose()
    return {"runs": runs}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    changed = [int(k) for k in args.changed.split(",")]
    results: dict[str, Any] = {
        "command": f"python -m {MODULE} --users {args.users} --changed {args.changed}",
        "machine": machine(),
        "withoutNotifications": {"batches": 2 * math.ceil(args.users / BATCH),
                                 "calendarLists": args.users, "deltaPages": args.users}}
    results.update(asyncio.run(measure(args.users, changed)))
    print(f"\nruns over {args.users} mailboxes with notifications on (every run without "
          f"them: {results['withoutNotifications']['batches']} $batch)")
    for run in results["runs"]:
        print(f"  {run['run']:24} $batch {run['batches']:5}, calendar lists "
              f"{run['calendarLists']:5}, delta pages {run['deltaPages']:5}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
