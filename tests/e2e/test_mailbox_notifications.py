"""A mailbox changed in Graph shows in Emply without waiting for the timer (issue 26):
Azurite, the simulator over HTTP delivering Graph's notifications to a local server that
calls the real `graph_notifications` function, and the real notification-queue function
standing in for the host's queue trigger.

The first (manual) run reads every mailbox and subscribes each to its events; an event
changed in the simulator is notified, marks that mailbox, and the run the notification
queues reads it alone. How long it takes with the trigger's polling is measured by
`bench.mailbox_notifications` (docs/scale.md)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest

from shared import config
from tests.e2e import tenants as t
from tests.e2e.test_http import function
from tests.support import run_queue as rq
from tests.support.notify_server import NotifyServer, notify_server

TOMORROW = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).date().isoformat()
DELTA = "GET /users/{id}/calendars/{cid}/calendarView/delta"
LIST = "GET /users/{id}/calendars"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[NotifyServer]:
    with notify_server() as running:
        monkeypatch.setenv(config.NOTIFICATIONS, "true")
        monkeypatch.setenv(config.PUBLIC_URL, running.base)
        monkeypatch.setenv(config.NOTIFICATION_KEY, "mailbox-notifications-key")
        yield running


def people(subject: str = "Standup") -> list[dict[str, Any]]:
    def calendar(n: int) -> list[dict[str, Any]]:
        return [{"id": f"cal-{n}", "name": "Calendar", "isDefaultCalendar": True,
                 "canEdit": True, "events": [{
                     "id": f"ev-{n}", "subject": subject if n == 0 else "Standup",
                     "showAs": "busy",
                     "start": {"dateTime": f"{TOMORROW}T09:00:00", "timeZone": "UTC"},
                     "end": {"dateTime": f"{TOMORROW}T09:30:00", "timeZone": "UTC"}}]}]
    return [t.entra_user(100 + n, f"Person{n} Staff", calendars=calendar(n)) for n in range(5)]


def tenant(subject: str = "Standup") -> dict[str, Any]:
    staff = people(subject)
    return t.tenant(staff, {t.G_EMPLOYEE: [p["id"] for p in staff], t.G_HR: []})


async def test_a_changed_event_is_mirrored_by_the_run_its_notification_queues(
        make_world: Any, server: NotifyServer) -> None:
    world = make_world(tenant())
    world.import_state(t.emply_state(calendarSync=True))
    assert world.sync()["counts"] == {"create_user": 5}
    first = world.sync()  # a manual run: every mailbox read, and subscribed
    assert first["counts"] == {"calendar_add": 5, "events_mirror": 5}
    subscriptions = world.sim.graph("GET", "/subscriptions").json()["value"]
    assert sorted(s["resource"] for s in subscriptions if s["resource"].endswith("/events")) \
        == sorted(f"users/{p['id']}/events" for p in people())
    drain(world)

    world.sim.reset_requests()
    world.sim.put_tenant(tenant("Moved to Friday"))  # Graph notifies Person0's mailbox
    assert ("notification", 202) in server.calls
    delivery = rq.receive(world.azurite.connection_string, config.NOTIFY_QUEUE_NAME)
    assert delivery is not None and json.loads(delivery.message.get_body())["kind"] == "run"
    await function("run_notified_sync")(delivery.message)
    rq.complete(world.azurite.connection_string, delivery, config.NOTIFY_QUEUE_NAME)

    events = {e["id"]: e for e in world.export()["events"]}
    assert events["ev-0"]["subject"] == "Moved to Friday"
    run = json.loads(world.ok("runs", "--limit", "1", "--json"))[0]
    assert run["trigger"] == "notification" and run["counts"] == {"events_mirror": 1}
    reads = world.sim.requests()["byEndpoint"]
    assert (reads.get(LIST), reads.get(DELTA)) == (1, 1)  # that mailbox alone


def drain(world: Any) -> None:
    """The notification work the first runs queued (handshakes are not work)."""
    while (delivery := rq.receive(world.azurite.connection_string,
                                  config.NOTIFY_QUEUE_NAME)) is not None:
        rq.complete(world.azurite.connection_string, delivery, config.NOTIFY_QUEUE_NAME)
