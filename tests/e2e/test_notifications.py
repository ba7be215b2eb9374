"""Graph change notifications end to end (issue 16): subscriptions through the simulator
(Graph's validation handshake against a local server that calls the real function),
a tenant change, the notification, one targeted run; forged notifications change
nothing; debounce; lifecycle events; renewal with an injected clock.

Queue messages are read from the real Azurite queue as the host's trigger reads them
(`tests.support.run_queue`) and handed to the real queue function.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import azure.functions.queue
import azure.functions.timer
import pytest

from shared import config
from shared import store as store_mod
from shared.graph import subscriptions as graph_subs
from shared.notify import inbox, renewal
from tests.e2e import tenants as t
from tests.e2e.test_http import function, get_run, request
from tests.support import run_queue as rq
from tests.support.notify_server import NotifyServer, notify_server

Q = config.NOTIFY_QUEUE_NAME
KEY = "graph-notify-key-for-tests"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[NotifyServer]:
    with notify_server() as running:
        monkeypatch.setenv(config.NOTIFICATIONS, "true")
        monkeypatch.setenv(config.PUBLIC_URL, running.base)
        monkeypatch.setenv(config.NOTIFICATION_KEY, KEY)
        yield running


def staffed(make_world: Any, guard: dict[str, int] | None = None) -> Any:
    people = t.staff(10)
    world = make_world(t.tenant(people, {t.G_EMPLOYEE: [p["id"] for p in people], t.G_HR: []}))
    world.import_state(t.emply_state(deactivationGuard=guard or {"maxCount": 50,
                                                                 "maxPercent": 100}))
    first = world.sync()
    assert first["counts"] == {"create_user": 10}
    return world


def remove_from_groups(world: Any, *indexes: int) -> None:
    tenant = world.sim.tenant()
    gone = {t.uid(100 + i) for i in indexes}
    for group in tenant["groups"]:
        group["members"] = [m for m in group["members"] if m not in gone]
    world.sim.put_tenant(tenant)


def sim_subscriptions(world: Any) -> dict[str, dict[str, Any]]:
    body = world.sim.graph("GET", "/subscriptions").json()
    return {s["resource"]: s for s in body["value"]}


async def deliver(world: Any, kinds: list[str] | None = None) -> dict[str, Any] | None:
    """The host's notification-queue trigger: the next visible message to the function.
    The run it made, or None (a lifecycle action, or a run not needed); the message's
    kind is appended to `kinds`."""
    before = [r["runId"] for r in await list_runs()]
    delivery = rq.receive(world.azurite.connection_string, Q)
    assert delivery is not None, "no notification work was queued"
    result = await function("run_notified_sync")(delivery.message)
    rq.complete(world.azurite.connection_string, delivery, Q)
    assert result is None  # the function returns nothing; the run is in the run log
    if kinds is not None:
        kinds.append(json.loads(delivery.message.get_body())["kind"])
    new = [r["runId"] for r in await list_runs() if r["runId"] not in before]
    assert len(new) <= 1
    return await get_run(new[0]) if new else None


def change_body(world: Any, resource: str = "groups", *, client_state: str | None = None,
                subscription_id: str | None = None, object_id: str = t.G_EMPLOYEE
                ) -> dict[str, Any]:
    sub = sim_subscriptions(world)[resource]
    return {"value": [{
        "subscriptionId": subscription_id or sub["id"],
        "subscriptionExpirationDateTime": sub["expirationDateTime"],
        "changeType": "updated", "clientState": client_state or sub["clientState"],
        "resource": f"Groups/{object_id}", "tenantId": t.TENANT_ID,
        "resourceData": {"@odata.type": "#Microsoft.Graph.Group",
                         "@odata.id": f"Groups/{object_id}", "id": object_id,
                         "organizationId": t.TENANT_ID}}]}


async def post_notification(body: Any) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await function("graph_notifications")(
        request("POST", "/api/graph/notifications", raw, params={"code": KEY}))


async def test_subscribe_change_notify_one_targeted_run_deactivates_the_leaver(
        make_world: Any, server: NotifyServer) -> None:
    world = staffed(make_world)
    # The timer tick runs the sync and then keeps the subscriptions.
    timer = azure.functions.timer.TimerRequest(past_due=False)
    await function("scheduled_sync")(timer)
    subs = sim_subscriptions(world)
    assert set(subs) == {"users", "groups"}
    for sub in subs.values():
        assert sub["changeType"] == "updated,deleted"
        assert sub["notificationUrl"] == f"{server.url}?code={KEY}"
        assert sub["lifecycleNotificationUrl"] == sub["notificationUrl"]
        assert len(sub["clientState"]) >= 32
    assert subs["users"]["clientState"] != subs["groups"]["clientState"]
    assert server.calls == [("validation", 200), ("validation", 200)]  # Graph's handshake

    remove_from_groups(world, 0)  # the simulator delivers before it answers
    assert server.calls[2:] == [("notification", 202)]
    assert rq.count(world.azurite.connection_string, Q) == 1
    assert world.users()["person0.staff@contoso.com"]["status"] == "active"  # not in the request

    report = await deliver(world)
    assert report is not None and report["trigger"] == "notification"
    assert report["status"] == "succeeded" and report["counts"] == {"deactivate_user": 1}
    users = world.users()
    assert users["person0.staff@contoso.com"]["status"] == "deactivated"
    assert sum(u["status"] == "active" for u in users.values()) == 9
    assert rq.count(world.azurite.connection_string, Q) == 0


def forged_bodies(world: Any) -> list[tuple[str, bytes | dict[str, Any], int]]:
    """(case, body, HTTP status): none may run anything."""
    good = change_body(world)
    missing = copy.deepcopy(good)
    del missing["value"][0]["changeType"]
    return [
        ("wrong clientState", change_body(world, client_state="x" * 43), 202),
        ("unknown subscription", change_body(world, subscription_id=
                                             "0a0a0a0a-0000-4000-8000-000000000000"), 202),
        ("item without changeType", missing, 202),
        ("item not an object", {"value": ["nope"]}, 202),
        ("not JSON", b"{value: [", 400),
        ("no value array", {"value": {}}, 400),
        ("empty value", {"value": []}, 400),
    ]


async def test_forged_notifications_cause_no_run_and_no_change(
        make_world: Any, server: NotifyServer, caplog: pytest.LogCaptureFixture) -> None:
    world = staffed(make_world)
    await renewal.keep()
    tenant = world.sim.tenant()
    for group in tenant["groups"]:
        group["members"] = []  # a real change is waiting: any run would deactivate all
    for sub_id in list(world.sim.simulator.subscriptions):
        world.sim.simulator.subscriptions[sub_id]["expirationDateTime"] = \
            "2000-01-01T00:00:00.0000000Z"  # expired in the simulator: it delivers nothing
    world.sim.put_tenant(tenant)
    before = world.users()
    cases = forged_bodies(world)
    secrets = [s["clientState"] for s in sim_subscriptions(world).values()]
    for case, body, status in cases:
        response = await post_notification(body)
        assert response.status_code == status, case
        assert rq.count(world.azurite.connection_string, Q) == 0, case
    assert world.users() == before
    dropped = [r for r in caplog.records if r.getMessage() == "emply_sync.notification_dropped"]
    assert {r.reason for r in dropped} == {  # type: ignore[attr-defined]
        "client_state_mismatch", "unknown_subscription", "malformed_notification"}
    logged = " ".join(str(r.__dict__) for r in caplog.records)
    assert not any(secret in logged for secret in secrets)  # no payload, no secret


async def test_a_replayed_notification_runs_nothing_more(
        make_world: Any, server: NotifyServer, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(config.NOTIFICATION_DEBOUNCE, "0")  # no trailing waits here
    world = staffed(make_world)
    await renewal.keep()
    remove_from_groups(world, 0)  # a real change, and its notification
    report = await deliver(world)
    assert report is not None and report["counts"] == {"deactivate_user": 1}
    runs_before = (await list_runs())
    users_before = world.users()
    # The same notification again: it cannot be told from a second change to the same
    # group, so it is queued; the worker finds nothing new in Graph's delta since the
    # last run and makes no run.
    assert (await post_notification(change_body(world))).status_code == 202
    kinds: list[str] = []
    assert await deliver(world, kinds) is None and kinds == ["run"]  # no run made
    assert await list_runs() == runs_before
    assert world.users() == users_before
    skipped = [r for r in caplog.records
               if r.getMessage() == "emply_sync.notification_run_skipped"]
    assert [r.reason for r in skipped] == ["nothing_changed"]  # type: ignore[attr-defined]
    # A second real change to the same group gives the very same body: that one runs.
    remove_from_groups(world, 1)
    second = await deliver(world)
    assert second is not None and second["counts"] == {"deactivate_user": 1}


async def list_runs() -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = json.loads(
        (await function("list_runs")(request("GET", "/r"))).get_body())["runs"]
    return runs


async def test_a_burst_is_debounced_to_a_leading_and_one_trailing_run(
        make_world: Any, server: NotifyServer) -> None:
    world = staffed(make_world)
    await renewal.keep()
    t0 = dt.datetime.now(dt.UTC)
    delays = []
    for second, object_id in [(0, t.G_EMPLOYEE), (10, t.G_HR), (20, t.uid(101)),
                              (30, t.uid(102)), (75, t.uid(103))]:
        body = change_body(world, object_id=object_id)
        received = await inbox.receive(json.dumps(body).encode(),
                                               now=t0 + dt.timedelta(seconds=second))
        assert received.accepted == 1
        delays.append(received.run_delay)
    # Leading edge at 0 s; one trailing run at 60 s for the changes at 10–30 s (they
    # come after the first run may have read them); the change at 75 s may come after
    # the trailing run read: one more at 120 s. Never two runs within a minute.
    assert delays == [0, 50, None, None, 45]
    assert rq.count(world.azurite.connection_string, Q) == 3


def test_next_run_table() -> None:
    minute = dt.timedelta(seconds=60)
    t0 = dt.datetime(2026, 12, 2, 6, 0, tzinfo=dt.UTC)
    s = dt.timedelta(seconds=1)
    cases = [
        (None, t0, t0),                  # never: now
        (t0 - 61 * s, t0, t0),           # long ago: now
        (t0 - 60 * s, t0, t0),           # exactly a window ago: now
        (t0 - 10 * s, t0, t0 + 50 * s),  # inside the window: trailing at last + window
        (t0, t0, t0 + 60 * s),           # same instant: trailing
        (t0 + 5 * s, t0, None),          # a run still to come covers it
    ]
    for last, now, expected in cases:
        assert inbox.next_run(last, now, minute) == expected, (last, now)


async def test_a_notification_run_over_the_guard_holds_like_any_run(
        make_world: Any, server: NotifyServer) -> None:
    world = staffed(make_world, guard={"maxCount": 1, "maxPercent": 100})
    await renewal.keep()
    remove_from_groups(world, 0, 1, 2)
    report = await deliver(world)
    assert report is not None and report["trigger"] == "notification"
    assert report["status"] == "needs_approval" and len(report["held"]) == 3
    assert all(u["status"] == "active" for u in world.users().values())


async def test_lifecycle_events(make_world: Any, server: NotifyServer) -> None:
    world = staffed(make_world)
    await renewal.keep()
    old = sim_subscriptions(world)

    def lifecycle(resource: str, event: str) -> None:
        answer = world.sim.http.post(f"/_sim/subscriptions/{old[resource]['id']}/lifecycle",
                                     json={"event": event})
        assert answer.status_code == 200 and answer.json() == {"status": 202}

    kinds: list[str] = []
    lifecycle("users", "reauthorizationRequired")
    assert await deliver(world, kinds) is None and kinds == ["reauthorize"]
    assert "reauthorizedAt" in world.sim.simulator.subscriptions[old["users"]["id"]]

    lifecycle("groups", "subscriptionRemoved")  # recreate, and a run
    await deliver(world, kinds)
    await deliver(world, kinds)
    assert sorted(kinds[1:]) == ["recreate", "run"]
    now = sim_subscriptions(world)
    assert now["groups"]["id"] != old["groups"]["id"]
    assert now["groups"]["clientState"] != old["groups"]["clientState"]

    # `missed`: a run (trailing, as the last one was scheduled seconds ago); beside it,
    # the run above, whose delta showed nothing new, is to be looked at again later.
    lifecycle("users", "missed")
    assert rq.count(world.azurite.connection_string, Q) == 2


async def test_renewal_before_expiry_with_an_injected_clock(
        make_world: Any, server: NotifyServer, monkeypatch: pytest.MonkeyPatch) -> None:
    world = staffed(make_world)
    t0 = dt.datetime.now(dt.UTC).replace(microsecond=0)
    assert await renewal.keep(now=t0) == {"users": "created", "groups": "created"}
    created = sim_subscriptions(world)
    expires = graph_subs.parse_time(created["users"]["expirationDateTime"])
    assert dt.timedelta(days=28) < expires - t0 <= dt.timedelta(minutes=41_760)
    # Three weeks on: more than a week left, nothing to do.
    assert await renewal.keep(now=t0 + dt.timedelta(days=21)) == {
        "users": "unchanged", "groups": "unchanged"}
    # Six days before expiry: renewed (the simulator's cap is measured from its real
    # clock, so ask as if "now" were real: the new expiry is capped anyway).
    late = expires - dt.timedelta(days=6)
    monkeypatch.setattr(graph_subs, "expiry",
                        lambda now, minutes=graph_subs.MAX_MINUTES: t0 + dt.timedelta(days=20))
    assert await renewal.keep(now=late) == {"users": "renewed", "groups": "renewed"}
    renewed = sim_subscriptions(world)
    assert renewed["users"]["id"] == created["users"]["id"]
    assert graph_subs.parse_time(renewed["users"]["expirationDateTime"]) \
        == t0 + dt.timedelta(days=20)
    # Graph forgot one (404 on renewal): created again.
    world.sim.graph("DELETE", f"/subscriptions/{created['groups']['id']}")
    outcome = await renewal.keep(now=t0 + dt.timedelta(days=15))
    assert outcome == {"users": "renewed", "groups": "recreated"}
    # The key rotated (a redeployment): both replaced, the old ones deleted.
    monkeypatch.setenv(config.NOTIFICATION_KEY, "rotated-key")
    assert await renewal.keep(now=t0) == {"users": "recreated", "groups": "recreated"}
    assert {s["notificationUrl"] for s in sim_subscriptions(world).values()} == {
        f"{server.url}?code=rotated-key"}
    assert len(world.sim.simulator.subscriptions) == 2


async def test_renewal_failure_is_logged_for_the_alert_and_the_tick_goes_on(
        make_world: Any, server: NotifyServer, caplog: pytest.LogCaptureFixture) -> None:
    world = staffed(make_world)
    world.sim.set_faults("/subscriptions", 503, method="POST", times=-1)
    outcome = await renewal.keep()
    assert outcome == {"users": "failed:graph_unavailable", "groups": "failed:graph_unavailable"}
    failed = [r for r in caplog.records if r.getMessage() == "emply_sync.subscription_failed"]
    assert {(r.action, r.resource, r.reason) for r in failed} == {  # type: ignore[attr-defined]
        ("keep", "users", "graph_unavailable"), ("keep", "groups", "graph_unavailable")}


async def test_with_notifications_off_nothing_changes(
        make_world: Any, server: NotifyServer, monkeypatch: pytest.MonkeyPatch) -> None:
    world = staffed(make_world)
    monkeypatch.setenv(config.NOTIFICATIONS, "false")
    await function("scheduled_sync")(azure.functions.timer.TimerRequest(past_due=False))
    assert world.sim.graph("GET", "/subscriptions").json()["value"] == []
    assert server.calls == []
    # Even a body naming a subscription the store once held is dropped: no run.
    response = await post_notification({"value": [{
        "subscriptionId": "0a0a0a0a-0000-4000-8000-000000000000", "clientState": "x",
        "changeType": "updated", "resource": "Users/x"}]})
    assert response.status_code == 202
    assert rq.count(world.azurite.connection_string, Q) == 0


async def test_validation_handshake_echoes_the_token_as_text() -> None:
    response = await function("graph_notifications")(request(
        "POST", "/api/graph/notifications", b"",
        params={"validationToken": "Validation: Token <&> 1", "code": KEY}))
    assert response.status_code == 200 and response.mimetype == "text/plain"
    assert response.get_body() == b"Validation: Token <&> 1"


async def test_a_notification_run_waits_while_another_run_holds_the_lease(
        make_world: Any, server: NotifyServer) -> None:
    world = staffed(make_world)
    await renewal.keep()
    async with store_mod.open_store(connection_string=world.azurite.connection_string) as st:
        await st.acquire_lease("20261202T050000Z-busy0001", "timer")
        remove_from_groups(world, 0)
        kinds: list[str] = []
        assert await deliver(world, kinds) is None and kinds == ["run"]
        # Queued again for a debounce window later (invisible now); nothing ran.
        assert rq.receive(world.azurite.connection_string, Q) is None
        assert rq.count(world.azurite.connection_string, Q) == 1
        assert world.users()["person0.staff@contoso.com"]["status"] == "active"
        await st.release_lease("20261202T050000Z-busy0001")


async def test_notifications_on_without_a_public_url_is_bad_configuration(
        make_world: Any, server: NotifyServer, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    world = staffed(make_world)
    monkeypatch.delenv(config.PUBLIC_URL)
    assert await renewal.keep() == {"users": "failed:bad_configuration",
                                          "groups": "failed:bad_configuration"}
    failed = [r for r in caplog.records if r.getMessage() == "emply_sync.subscription_failed"]
    assert all(config.PUBLIC_URL in r.detail for r in failed)  # type: ignore[attr-defined]
    assert len(failed) == 2 and world.sim.graph("GET", "/subscriptions").json()["value"] == []


@pytest.mark.parametrize(("body", "kind", "taken_over_by"), [
    (json.dumps({"kind": inbox.RUN, "busyWaits": 0}), "run", "the next timer run"),
    (json.dumps({"kind": inbox.RECREATE, "resource": "users"}), inbox.RECREATE,
     "the next timer tick's subscription check"),
    ("not json", None, "the next timer run"),
])
async def test_work_the_host_gave_up_on_is_recorded_never_dropped_silently(
        make_world: Any, caplog: pytest.LogCaptureFixture, body: str, kind: str | None,
        taken_over_by: str) -> None:
    staffed(make_world)
    runs_before = await list_runs()
    message = azure.functions.queue.QueueMessage(id="m-1", body=body.encode(),
                                                 dequeue_count=5)
    await function("notified_work_poisoned")(message)
    (record,) = [r for r in caplog.records if r.getMessage() == "emply_sync.error"
                 and getattr(r, "reason", None) == "notification_work_poisoned"]
    assert (record.kind, record.attempts, record.takenOverBy) == (kind, 5, taken_over_by)
    if kind is None:
        assert body not in str(record.__dict__)  # a bad body is not echoed into the logs
    assert await list_runs() == runs_before  # recorded, nothing run


def _lifecycle_body(sub: dict[str, Any], event: str) -> dict[str, Any]:
    return {"value": [{"subscriptionId": sub["id"], "tenantId": t.TENANT_ID,
                       "subscriptionExpirationDateTime": sub["expirationDateTime"],
                       "clientState": sub["clientState"], "lifecycleEvent": event}]}


async def _work_all_at_once(world: Any, kind: str) -> int:
    """Every queued notification message of `kind`, handed to the worker all at once (as
    many host instances would); the others are taken off the queue unrun. How many."""
    deliveries = []
    while (delivery := rq.receive(world.azurite.connection_string, Q)) is not None:
        rq.complete(world.azurite.connection_string, delivery, Q)
        if json.loads(delivery.message.get_body())["kind"] == kind:
            deliveries.append(delivery)
    await asyncio.gather(*(function("run_notified_sync")(d.message) for d in deliveries))
    return len(deliveries)


@pytest.mark.parametrize("event", ["subscriptionRemoved", "reauthorizationRequired"])
async def test_ten_deliveries_of_one_lifecycle_event_act_once_and_leave_no_orphan(
        make_world: Any, server: NotifyServer, event: str) -> None:
    """Issue 24: ten deliveries of one subscriptionRemoved made ten subscriptions, nine of
    them orphaned at Graph."""
    world = staffed(make_world)
    await renewal.keep()
    old = sim_subscriptions(world)["groups"]
    if event == "subscriptionRemoved":
        world.sim.graph("DELETE", f"/subscriptions/{old['id']}")  # Graph removed it
    else:  # Graph refuses to reauthorize it: it is replaced instead
        world.sim.set_faults(f"/subscriptions/{old['id']}/reauthorize", 403, method="POST",
                             times=-1)
    for _ in range(10):
        response = await post_notification(_lifecycle_body(old, event))
        assert response.status_code == 202
    kind = inbox.RECREATE if event == "subscriptionRemoved" else inbox.REAUTHORIZE
    assert await _work_all_at_once(world, kind) == 10
    at_graph = world.sim.graph("GET", "/subscriptions").json()["value"]
    assert sorted(s["resource"] for s in at_graph) == ["groups", "users"]  # no orphan
    async with store_mod.open_store(connection_string=world.azurite.connection_string) as st:
        stored = await st.subscriptions()
    assert {r.subscription_id for r in stored.values()} == {s["id"] for s in at_graph}
    assert stored["groups"].subscription_id != old["id"]
    # The new subscription carries notifications: a change is accepted and runs.
    remove_from_groups(world, 0)
    assert server.calls[-1] == ("notification", 202)


async def test_a_subscription_the_store_does_not_know_is_deleted_at_graph(
        make_world: Any, server: NotifyServer) -> None:
    world = staffed(make_world)
    await renewal.keep()
    # A crash between creating a subscription and storing it leaves one at Graph.
    stray = world.sim.graph("POST", "/subscriptions", json={
        "changeType": "updated,deleted", "resource": "users",
        "notificationUrl": f"{server.url}?code=old-key", "clientState": "x" * 40,
        "expirationDateTime": graph_subs.iso(dt.datetime.now(dt.UTC)
                                             + dt.timedelta(days=2))}).json()
    assert stray["id"] in {s["id"] for s in world.sim.graph("GET", "/subscriptions")
                           .json()["value"]}
    assert await renewal.keep() == {"users": "unchanged", "groups": "unchanged"}
    left = {s["id"] for s in world.sim.graph("GET", "/subscriptions").json()["value"]}
    assert stray["id"] not in left and len(left) == 2
