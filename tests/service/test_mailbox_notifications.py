"""The mailbox pass with Graph change notifications on (issue 26), on the storage fakes
and the simulator's handlers in-process: subscriptions on each synced mailbox's events,
a notification that marks one mailbox, a run that reads that mailbox alone, a lifecycle
event that makes a subscription anew, and the sweep of a scheduled run.

Graph calls the notification URL (the handshake, then the notifications): a local HTTP
server here answers the handshake and keeps what Graph sent; the items go to the route's
own code for mailboxes (`shared.notify.mailbox_inbox`), as the route hands them on."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from graph_simulator.state import Simulator
from shared.graph import client as graph_client
from shared.notify import mailbox_inbox
from shared.reconcile import mailbox_sweep
from shared.run import context, pipeline
from shared.run.mailboxes import notified
from shared.run.mailboxes.settings import PassSettings
from tests.e2e.tenants import G_EMPLOYEE, G_HR, emply_state, entra_user, tenant
from tests.support.memory_store import MemoryStore

NOW = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
"""Graph (the simulator) takes a subscription's expiry by its own clock: the run's is now."""
URL = "http://127.0.0.1:1/v1.0"
PEOPLE = 6
DELTA = "GET /users/{id}/calendars/{cid}/calendarView/delta"
LIST = "GET /users/{id}/calendars"


def _event(n: int, subject: str = "Meeting") -> dict[str, Any]:
    day = (NOW + dt.timedelta(days=1)).date().isoformat()
    return {"id": f"ev-{n}", "subject": f"{subject} {n}", "showAs": "busy",
            "start": {"dateTime": f"{day}T09:00:00", "timeZone": "UTC"},
            "end": {"dateTime": f"{day}T09:30:00", "timeZone": "UTC"}}


def _people(subject: str = "Meeting") -> list[dict[str, Any]]:
    return [entra_user(100 + n, f"Person{n} Staff", calendars=[{
        "id": f"cal-{n}", "name": "Calendar", "isDefaultCalendar": True, "canEdit": True,
        "events": [_event(n, subject if n == 0 else "Meeting")]}]) for n in range(PEOPLE)]


def _tenant(subject: str = "Meeting") -> dict[str, Any]:
    people = _people(subject)
    return tenant(people, {G_EMPLOYEE: [p["id"] for p in people], G_HR: []})


def _emply() -> dict[str, Any]:
    users = [{"id": f"u-{n}", "username": p["userPrincipalName"], "email": p["mail"],
              "displayName": p["displayName"], "roles": ["employee"], "entraId": p["id"],
              "status": "active", "source": "entra"} for n, p in enumerate(_people())]
    return emply_state(users=users, calendarSync=True)


class Graphs:
    """What Graph sent to the notification URL."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []


@pytest.fixture
def callback() -> Iterator[tuple[str, Graphs]]:
    sent = Graphs()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            params = dict(parse_qsl(urlsplit(self.path).query))
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            answer = params.get("validationToken", "").encode()
            if not answer:
                sent.bodies.append(json.loads(body))
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
        yield f"http://127.0.0.1:{server.server_address[1]}/api/graph/notifications", sent
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def sim() -> Simulator:
    return Simulator(_tenant())


def _deps(store: MemoryStore, graph: graph_client.GraphClient, url: str,
          now: dt.datetime = NOW) -> context.Deps:
    return context.Deps(store=store, graph=graph, clock=lambda: now,
                        mailboxes=PassSettings(notification_url=url))


def _mailbox_requests(sim: Simulator) -> dict[str, int]:
    return {k: n for k, n in sim.counts.items() if k in (LIST, DELTA)}


async def test_a_notified_mailbox_is_read_alone(sim: Simulator, graph: graph_client.GraphClient,
                                              callback: tuple[str, Graphs]) -> None:
    url, sent = callback
    store = MemoryStore(lambda: NOW)
    await store.import_document(_emply())
    first = await pipeline.run_sync(_deps(store, graph, url), trigger="cli")
    assert first["counts"] == {"calendar_add": PEOPLE, "events_mirror": PEOPLE}
    made = [s for s in sim.subscriptions.values() if s.get("_mailbox")]
    assert len(made) == PEOPLE and {s["changeType"] for s in made} == {
        "created,updated,deleted"}
    assert all(s["resource"].endswith("/events") for s in made)

    # One event of Person0 changes: Graph notifies its mailbox; only that one is read.
    sim.replace_tenant(_tenant("Moved"))
    from graph_simulator import event_notifications, subscriptions
    await subscriptions.deliver_events(sim, event_notifications.changed(
        sim.snapshots[1].calendars, sim.current.calendars))
    items = [i for body in sent.bodies for i in body["value"]]
    assert [i["changeType"] for i in items] == ["updated"]
    accepted, dropped = await mailbox_inbox.accept(store.mailbox_states(), items, NOW,
                                                   enabled=True)
    assert (accepted, dropped) == (1, {})
    sim.counts.clear()
    report = await pipeline.run_sync(_deps(store, graph, url), trigger="notification")
    assert report["counts"] == {"events_mirror": 1}
    assert report["changes"][0]["userId"] == "u-0"
    assert _mailbox_requests(sim) == {LIST: 1, DELTA: 1}
    assert await notified.dirty(store.mailbox_states()) == {}  # the mark is gone

    # Nothing notified: a notification's run reads no mailbox at all.
    sim.counts.clear()
    quiet = await pipeline.run_sync(_deps(store, graph, url), trigger="notification")
    assert quiet["counts"] == {} and _mailbox_requests(sim) == {}


async def test_forged_items_change_nothing_and_a_removed_subscription_is_made_anew(
        sim: Simulator, graph: graph_client.GraphClient, callback: tuple[str, Graphs]) -> None:
    url, _sent = callback
    store = MemoryStore(lambda: NOW)
    await store.import_document(_emply())
    await pipeline.run_sync(_deps(store, graph, url), trigger="cli")
    target = next(s for s in sim.subscriptions.values() if s.get("_mailbox"))
    forged = {**target, "clientState": target["clientState"][:-2] + "xx"}
    items = [{"subscriptionId": target["id"], "clientState": forged["clientState"],
              "changeType": "updated", "resource": "Users/x/Events/y"},
             {"subscriptionId": target["id"], "clientState": "m1.nope",
              "lifecycleEvent": "missed"},
             {"subscriptionId": target["id"], "clientState": target["clientState"],
              "changeType": "bogus", "resource": "Users/x/Events/y"}]
    assert await mailbox_inbox.accept(store.mailbox_states(), items, NOW, enabled=True) == (
        0, {"client_state_mismatch": 2, "malformed_notification": 1})
    assert await notified.dirty(store.mailbox_states()) == {}

    # Graph removed the subscription: the lifecycle event names no resource, the
    # clientState names the mailbox; the next run reads it and subscribes it anew.
    del sim.subscriptions[target["id"]]
    removed = [{"subscriptionId": target["id"], "clientState": target["clientState"],
                "lifecycleEvent": "subscriptionRemoved"}]
    assert await mailbox_inbox.accept(store.mailbox_states(), removed, NOW,
                                      enabled=True) == (1, {})
    await pipeline.run_sync(_deps(store, graph, url), trigger="notification")
    again = [s for s in sim.subscriptions.values() if s.get("_mailbox") == target["_mailbox"]]
    assert len(again) == 1 and again[0]["id"] != target["id"]


async def test_a_scheduled_run_sweeps_its_slot(sim: Simulator, graph: graph_client.GraphClient,
                                               callback: tuple[str, Graphs]) -> None:
    url, _sent = callback
    store = MemoryStore(lambda: NOW)
    await store.import_document(_emply())
    await pipeline.run_sync(_deps(store, graph, url), trigger="cli")
    schedule = context.Deps.__dataclass_fields__["schedule"].default
    slots = mailbox_sweep.slots_for(schedule, 24)
    assert slots == 24  # 48 ticks a day: every bucket twice a day
    read = 0
    for tick in range(slots):
        at = NOW + dt.timedelta(minutes=30 * tick)
        swept = mailbox_sweep.swept(schedule, 24, at)
        sim.counts.clear()
        await pipeline.run_sync(_deps(store, graph, url, at), trigger="timer")
        users = sum(1 for n in range(PEOPLE)
                    if _bucket(f"u-{n}") in swept)
        assert _mailbox_requests(sim).get(LIST, 0) == users
        read += users
    assert read == PEOPLE  # a day's first half: every mailbox once


def _bucket(user_id: str) -> str:
    from shared.store import keys

    return keys.user_bucket(user_id)
