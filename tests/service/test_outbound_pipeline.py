"""R15 following Emply, run after run, on the storage fakes and the Graph simulator
in-process (the real msgraph-sdk pipeline, the real steps; no socket, no Azurite).

FAQ ("How do I synchronize the calendar with MS365?"): "Additionally, Emply can create
events in the MS365 calendar." BEHAVIOUR R15: when Emply later changes it the M365
event is updated; when Emply cancels or deletes it, the M365 event is cancelled
(attendees notified) or deleted; an event deleted in M365 by its owner is reported,
not re-created. R14: Emply shows it once. Each step exactly once across crashes: a run
stopped between the Graph call and the status write, then run again, leaves one effect,
with the simulator remembering no `transactionId` at all.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from graph_simulator import event_extras
from graph_simulator.state import Simulator
from shared.app import emply_import
from shared.graph import client as graph_client
from shared.graph import event_writer
from shared.run import context, pipeline
from shared.run.steps import event_push as event_push_step
from tests.e2e.tenants import G_EMPLOYEE, emply_state, entra_user, tenant
from tests.support.memory_store import MemoryPhotoBlobs, MemoryStore

NOW = dt.datetime(2026, 11, 30, 8, 0, tzinfo=dt.UTC)
ANN = entra_user(1, "Ann Lee", calendars=[{
    "id": "cal-ann", "name": "Calendar", "isDefaultCalendar": True, "canEdit": True,
    "events": []}])
CANDIDATE = {"email": "lee.gu@fabrikam.com", "name": "Lee Gu"}


def interview(day: int = 2, **extra: Any) -> dict[str, Any]:
    return {"id": "o-1", "userId": "u-ann", "subject": "Interview: Lee Gu",
            "start": f"2026-12-0{day}T10:00:00Z", "end": f"2026-12-0{day}T11:00:00Z",
            "location": "Room 4", "body": "Second round", "attendees": [CANDIDATE], **extra}


@pytest.fixture
def sim() -> Simulator:
    sim = Simulator(tenant([ANN], {G_EMPLOYEE: [ANN["id"]]}))
    event_extras.extras(sim).window = 0  # Graph promises nothing beyond a retry
    return sim


async def linked_store(graph: graph_client.GraphClient) -> MemoryStore:
    store = MemoryStore(lambda: NOW)
    await store.import_document(emply_state(
        users=[{"id": "u-ann", "username": ANN["userPrincipalName"], "email": ANN["mail"],
                "displayName": "Ann Lee", "roles": ["employee"]}], calendarSync=True))
    await run(store, graph)  # links Ann
    await run(store, graph)  # her calendar
    return store


async def run(store: MemoryStore, graph: graph_client.GraphClient) -> dict[str, Any]:
    deps = context.Deps(store=store, graph=graph, clock=lambda: NOW, photos=MemoryPhotoBlobs())
    report = await pipeline.run_sync(deps, trigger="timer")
    assert report["status"] == "succeeded", report["errors"]
    return report


async def send(store: MemoryStore, *events: dict[str, Any]) -> None:
    """Emply sends its outbound events (its own fields only, as a plain import)."""
    await emply_import.import_emply(store, {"outboundEvents": list(events)})


async def stored(store: MemoryStore) -> dict[str, dict[str, Any]]:
    return {o["id"]: o for o in (await store.export_document())["outboundEvents"]}


def m365(sim: Simulator) -> list[dict[str, Any]]:
    """Ann's M365 events."""
    return [e for c in sim.current.calendars[ANN["id"]] for e in c["events"]]


def pushes(report: dict[str, Any]) -> list[tuple[str, str]]:
    return [(c["reason"], c["after"]["status"]) for c in report["changes"]
            if c["kind"] == "event_push"]


async def pushed(store: MemoryStore, graph: graph_client.GraphClient,
                 **extra: Any) -> dict[str, Any]:
    await send(store, interview(**extra))
    assert pushes(await run(store, graph)) == [("outbound_event", "created")]
    return (await stored(store))["o-1"]


async def test_an_interview_moved_in_emply_is_one_m365_event_at_the_new_time(
        sim: Simulator, graph: graph_client.GraphClient) -> None:
    store = await linked_store(graph)
    first = await pushed(store, graph)
    await send(store, interview(day=3))
    report = await run(store, graph)
    assert pushes(report) == [("event_changed", "updated")]
    (change,) = [c for c in report["changes"] if c["kind"] == "event_push"]
    assert change["after"]["fields"] == ["start", "end"]
    (event,) = m365(sim)
    assert (event["id"], event["start"]["dateTime"]) == (first["graphId"], "2026-12-03T10:00:00")
    after = (await stored(store))["o-1"]
    assert (after["status"], after["graphId"], after["attemptedAt"]) == (
        "updated", first["graphId"], None)
    kinds = [m["kind"] for m in event_extras.extras(sim).mail]
    assert kinds == ["invitation", "update"]  # Outlook told the candidate
    assert pushes(await run(store, graph)) == []


async def test_an_interview_cancelled_in_emply_is_cancelled_in_m365(
        sim: Simulator, graph: graph_client.GraphClient) -> None:
    store = await linked_store(graph)
    await pushed(store, graph)
    await send(store, interview(cancelled=True))
    assert pushes(await run(store, graph)) == [("event_cancelled", "cancelled")]
    assert m365(sim) == []
    cancellation = event_extras.extras(sim).mail[-1]
    assert (cancellation["kind"], cancellation["to"]) == ("cancellation", [CANDIDATE["email"]])
    assert (await stored(store))["o-1"]["status"] == "cancelled"
    assert pushes(await run(store, graph)) == []  # final: never created again


async def test_an_event_without_attendees_cancelled_is_deleted(
        sim: Simulator, graph: graph_client.GraphClient) -> None:
    store = await linked_store(graph)
    await pushed(store, graph, attendees=[])
    sim.counts.clear()
    await send(store, interview(attendees=[], cancelled=True))
    assert pushes(await run(store, graph)) == [("event_cancelled", "cancelled")]
    assert m365(sim) == [] and event_extras.extras(sim).mail == []
    assert sim.counts["DELETE /users/{id}/events/{eid}"] == 1
    assert "POST /users/{id}/events/{eid}/cancel" not in sim.counts


async def test_an_interview_deleted_in_emply_is_gone_in_m365_and_then_in_emply(
        sim: Simulator, graph: graph_client.GraphClient) -> None:
    store = await linked_store(graph)
    await pushed(store, graph)
    await send(store, {**interview(), "deleteRequested": True})
    assert pushes(await run(store, graph)) == [("event_deleted", "deleted")]
    assert m365(sim) == [] and await stored(store) == {}
    assert event_extras.extras(sim).mail[-1]["kind"] == "cancellation"


async def test_a_pushed_event_never_appears_in_emplys_events(
        sim: Simulator, graph: graph_client.GraphClient) -> None:
    store = await linked_store(graph)
    first = await pushed(store, graph)
    for day in (3, 4):  # R14 reads the calendar after each push and each move
        await run(store, graph)
        mirrored = [e["id"] for e in (await store.export_document())["events"]]
        assert first["graphId"] not in mirrored
        await send(store, interview(day=day))
    sim.current.calendars[ANN["id"]][0]["events"].append({
        "id": "AAMk-meeting", "subject": "Onboarding review", "showAs": "busy",
        "start": {"dateTime": "2026-12-02T09:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2026-12-02T09:30:00", "timeZone": "UTC"}})
    await run(store, graph)
    assert [e["id"] for e in (await store.export_document())["events"]] == ["AAMk-meeting"]


async def test_an_event_deleted_in_outlook_is_reported_not_created_again(
        sim: Simulator, graph: graph_client.GraphClient) -> None:
    store = await linked_store(graph)
    await pushed(store, graph)
    assert pushes(await run(store, graph)) == []  # R14's delta has seen it since
    sim.current.calendars[ANN["id"]][0]["events"].clear()  # its owner deleted it
    assert pushes(await run(store, graph)) == []  # the mailbox pass (R14) sees it go
    report = await run(store, graph)  # the next run looks it up: gone
    assert pushes(report) == [("deleted_in_m365", "deleted")]
    assert pushes(await run(store, graph)) == []  # looked up once
    after = (await stored(store))["o-1"]
    assert (after["status"], after["reason"]) == ("deleted", "deleted_in_m365")
    await send(store, interview(day=3))  # moved in Emply afterwards: still not re-created
    assert pushes(await run(store, graph)) == [] and m365(sim) == []


async def test_a_user_deactivated_between_push_and_move_fails_the_move_with_its_reason(
        sim: Simulator, graph: graph_client.GraphClient) -> None:
    store = await linked_store(graph)
    await pushed(store, graph)
    ann = (await store.export_document())["users"][0]
    await store.import_document({"users": [{**ann, "status": "deactivated",
                                            "deactivatedBy": "emply"}]})
    await send(store, interview(day=3))
    report = await run(store, graph)
    assert pushes(report) == [("user_deactivated", "failed")]
    after = (await stored(store))["o-1"]
    assert (after["status"], after["reason"]) == ("failed", "user_deactivated")
    (event,) = m365(sim)
    assert event["start"]["dateTime"] == "2026-12-02T10:00:00"  # not moved
    assert pushes(await run(store, graph)) == []  # no retry loop


class _Killed(BaseException):
    """The run's process dies: nothing after the Graph call happens."""


@pytest.mark.parametrize(("step", "route"), [
    ("create", "POST /users/{id}/calendar/events"),
    ("move", "PATCH /users/{id}/events/{eid}"),
    ("cancel", "POST /users/{id}/events/{eid}/cancel"),
    ("delete", "DELETE /users/{id}/events/{eid}"),
])
async def test_a_run_stopped_after_the_graph_call_leaves_one_effect_after_rerun(
        sim: Simulator, graph: graph_client.GraphClient, monkeypatch: pytest.MonkeyPatch,
        step: str, route: str) -> None:
    store = await linked_store(graph)
    if step != "create":
        await pushed(store, graph)
    change = {"create": interview(), "move": interview(day=3),
              "cancel": interview(cancelled=True),
              "delete": {**interview(), "deleteRequested": True}}[step]
    await send(store, change)
    sent = event_writer.send

    async def then_killed(*args: Any, **kwargs: Any) -> Any:
        await sent(*args, **kwargs)
        raise _Killed

    monkeypatch.setattr(event_push_step.event_writer, "send", then_killed)
    sim.counts.clear()
    with pytest.raises(_Killed):
        await run(store, graph)
    monkeypatch.undo()
    assert sim.counts[route] == 1
    assert (await stored(store))["o-1"]["attemptedAt"]  # the trace the rerun follows
    await run(store, graph)
    assert sim.counts[route] == 1  # not sent again: looked up instead
    lookup = "GET /users/{id}/events" + ("" if step == "create" else "/{eid}")
    assert sim.counts[lookup] == 1
    assert pushes(await run(store, graph)) == []
    events, left = m365(sim), await stored(store)
    if step == "create":
        assert len(events) == 1 and left["o-1"]["graphId"] == events[0]["id"]
    elif step == "move":
        assert [e["start"]["dateTime"] for e in events] == ["2026-12-03T10:00:00"]
        assert left["o-1"]["status"] == "updated"
    elif step == "cancel":
        assert events == [] and left["o-1"]["status"] == "cancelled"
    else:
        assert events == [] and left == {}
    mail = [m["kind"] for m in event_extras.extras(sim).mail]
    assert mail == {"create": ["invitation"], "move": ["invitation", "update"],
                    "cancel": ["invitation", "cancellation"],
                    "delete": ["invitation", "cancellation"]}[step]
