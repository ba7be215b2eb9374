"""Per-user faults never stop a run (R7), on the pipeline's fakes: the storage fakes and
the Graph simulator's handlers in-process (the real msgraph-sdk pipeline, no socket),
with the simulator answering as Graph does for one user (`graph_simulator.quirks`).

A mailbox Graph refuses is an error on that user, with Graph's code; its calendars stay
as Emply holds them; everything else applies (the leaver is deactivated); the user is
left alone until its next try, with back-off, and read again then. Write-back: a write
Graph refuses as a privileged user's is reported once and not sent again until it
changes; writes the quota cannot fit are deferred, not failed; a UPN Graph would refuse
is never sent.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import pytest

from graph_simulator import quirks
from graph_simulator.state import Simulator
from shared.graph import client as graph_client
from shared.run import context, explain, on_demand, pipeline
from tests.e2e.tenants import G_EMPLOYEE, G_HR, emply_state, entra_user, tenant
from tests.support.memory_store import MemoryPhotoBlobs, MemoryStore

NOW = dt.datetime(2026, 11, 30, 8, 0, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)


def _calendar(cal_id: str) -> dict[str, Any]:
    return {"id": cal_id, "name": "Calendar", "isDefaultCalendar": True, "canEdit": True,
            "events": []}


ANN = entra_user(1, "Ann Lee", calendars=[_calendar("cal-ann")])
BO = entra_user(2, "Bo Ek", calendars=[_calendar("cal-bo")])
CY = entra_user(3, "Cy Ng", calendars=[_calendar("cal-cy")])
DEE = entra_user(4, "Dee Ho")  # the leaver: in no group any more


def _linked(user_id: str, entra: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"id": user_id, "username": entra["userPrincipalName"], "email": entra["mail"],
            "displayName": entra["displayName"], "roles": ["employee"], "status": "active",
            "entraId": entra["id"], **more}


def _world(**settings: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    graph = tenant([ANN, BO, CY, DEE], {G_EMPLOYEE: [ANN["id"], BO["id"], CY["id"]],
                                        G_HR: []})
    emply = emply_state(
        users=[_linked("u-ann", ANN), _linked("u-bo", BO), _linked("u-cy", CY),
               _linked("u-dee", DEE)],
        **{"calendarSync": True, **settings})
    # Bo's Emply side holds a calendar Graph no longer lists: a read of Bo removes it.
    emply["calendars"] = [{"userId": "u-bo", "id": "cal-old", "name": "Old",
                           "isDefault": False, "enabled": False}]
    return graph, emply


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sim() -> Simulator:
    return Simulator(_world()[0])


async def _store(clock: Clock, emply: dict[str, Any] | None = None) -> MemoryStore:
    store = MemoryStore(clock)
    await store.import_document(emply or _world()[1])
    return store


def _deps(store: MemoryStore, graph: graph_client.GraphClient, clock: Clock) -> context.Deps:
    return context.Deps(store=store, graph=graph, clock=clock, photos=MemoryPhotoBlobs())


async def _run(store: MemoryStore, graph: graph_client.GraphClient, clock: Clock,
               **kwargs: Any) -> dict[str, Any]:
    return await pipeline.run_sync(_deps(store, graph, clock), trigger="timer", **kwargs)


def _kinds(report: dict[str, Any]) -> set[tuple[str, str | None]]:
    return {(c["kind"], c.get("userId")) for c in report["changes"]}


def _mailbox_reads(sim: Simulator, entra_id: str) -> int:
    return sum(1 for r in sim.log if entra_id in r["path"] and "/calendar" in r["path"])


async def _calendars(store: MemoryStore, user_id: str) -> set[str]:
    doc = await store.export_document()
    return {c["id"] for c in doc["calendars"] if c["userId"] == user_id}


async def test_a_refused_mailbox_is_an_error_on_that_user_and_the_leaver_still_goes(
        sim: Simulator, graph: graph_client.GraphClient, clock: Clock) -> None:
    sim.quirks.users[BO["id"]] = quirks.UserQuirks(mailbox=quirks.ACCESS_DENIED)
    store = await _store(clock)
    dry = await _run(store, graph, clock, dry_run=True)
    assert dry["status"] == "succeeded"
    assert [(e["reason"], e["entraId"], e["graphCode"]) for e in dry["errors"]] == [
        ("mailbox_unavailable", BO["id"], "ErrorAccessDenied")]
    assert await store.load_state_part("faults") is None  # a dry run keeps nothing

    report = await _run(store, graph, clock)
    assert report["status"] == "succeeded", report["errors"]
    assert ("deactivate_user", "u-dee") in _kinds(report)
    assert {("calendar_add", "u-ann"), ("calendar_add", "u-cy")} <= _kinds(report)
    assert not any(user == "u-bo" for _, user in _kinds(report))
    (error,) = report["errors"]
    assert (error["reason"], error["entraId"], error["graphStatus"], error["graphCode"],
            error["temporary"], error["attempts"]) == (
        "mailbox_unavailable", BO["id"], 403, "ErrorAccessDenied", False, 1)
    assert error["nextTry"] == "2026-11-30T08:30:00.000Z"
    assert await _calendars(store, "u-bo") == {"cal-old"}  # kept as Emply held it
    users = {u["id"]: u for u in (await store.export_document())["users"]}
    assert users["u-dee"]["status"] == "deactivated"
    stored = (await store.load_state_part("faults"))["reads"]["mailbox"]
    assert list(stored) == [BO["id"]] and stored[BO["id"]]["code"] == "ErrorAccessDenied"


async def test_a_failing_mailbox_is_left_alone_until_its_next_try_with_back_off(
        sim: Simulator, graph: graph_client.GraphClient, clock: Clock) -> None:
    sim.quirks.users[BO["id"]] = quirks.UserQuirks(mailbox=quirks.INVALID_USER)
    store = await _store(clock)
    first = await _run(store, graph, clock)
    assert [e["graphCode"] for e in first["errors"]] == ["ErrorInvalidUser"]
    assert first["errors"][0]["temporary"] is True

    clock.now = NOW + 10 * MINUTE  # a notification's run, say: Bo is not asked for
    asked = _mailbox_reads(sim, BO["id"])
    quiet = await _run(store, graph, clock)
    assert quiet["errors"] == [] and quiet["skips"]["mailbox_retry_later"] == 1
    assert _mailbox_reads(sim, BO["id"]) == asked

    clock.now = NOW + 30 * MINUTE  # the next timer run: tried again, and failing again
    second = await _run(store, graph, clock)
    assert _mailbox_reads(sim, BO["id"]) > asked
    assert [(e["attempts"], e["nextTry"]) for e in second["errors"]] == [
        (2, "2026-11-30T09:30:00.000Z")]  # 30 min, then 1 h: doubled

    sim.quirks.users.clear()  # Exchange knows the mailbox now
    clock.now = NOW + 90 * MINUTE
    third = await _run(store, graph, clock)
    assert third["errors"] == []
    assert {("calendar_add", "u-bo"), ("calendar_remove", "u-bo")} <= _kinds(third)
    assert await _calendars(store, "u-bo") == {"cal-bo"}
    assert (await store.load_state_part("faults"))["reads"] == {}  # cleared on success


async def test_an_on_demand_sync_tries_a_waiting_mailbox_now_and_clears_its_fault(
        sim: Simulator, graph: graph_client.GraphClient, clock: Clock) -> None:
    sim.quirks.users[BO["id"]] = quirks.UserQuirks(mailbox=quirks.INVALID_USER)
    store = await _store(clock)
    await _run(store, graph, clock)
    assert list((await store.load_state_part("faults"))["reads"]["mailbox"]) == [BO["id"]]

    sim.quirks.users.clear()
    clock.now = NOW + 5 * MINUTE  # well before its next try: someone asked for Bo now
    asked = _mailbox_reads(sim, BO["id"])
    report = await on_demand.sync_user(_deps(store, graph, clock), "u-bo")
    assert _mailbox_reads(sim, BO["id"]) > asked
    assert report["errors"] == [] and "mailbox_retry_later" not in report["skips"]
    assert await _calendars(store, "u-bo") == {"cal-bo"}
    assert (await store.load_state_part("faults"))["reads"] == {}


async def test_a_calendar_that_pages_forever_is_an_error_on_its_user_only(
        sim: Simulator, graph: graph_client.GraphClient, clock: Clock) -> None:
    sim.quirks.users[ANN["id"]] = quirks.UserQuirks(looping_calendars=frozenset({"cal-ann"}))
    store = await _store(clock)
    report = await _run(store, graph, clock)
    assert report["status"] == "succeeded"
    (error,) = report["errors"]
    assert (error["reason"], error["entraId"], error["calendarId"], error["graphCode"],
            error["temporary"]) == ("mailbox_unavailable", ANN["id"], "cal-ann",
                                    "paging_loop", True)
    # Ann's calendar list was read: her calendar is kept; its events wait for her next try.
    assert ("calendar_add", "u-ann") in _kinds(report)
    assert ("deactivate_user", "u-dee") in _kinds(report)
    clock.now = NOW + 10 * MINUTE
    assert (await _run(store, graph, clock))["skips"] == {"mailbox_retry_later": 1}


async def test_explain_says_why_a_users_calendars_are_not_synced(
        sim: Simulator, graph: graph_client.GraphClient, clock: Clock) -> None:
    sim.quirks.users[BO["id"]] = quirks.UserQuirks(mailbox=quirks.ACCESS_DENIED)
    store = await _store(clock)
    await _run(store, graph, clock)
    clock.now = NOW + 5 * MINUTE
    answer = await explain.explain_user(_deps(store, graph, clock), "u-bo")
    why = " ".join(answer["why"])
    assert "mailbox_unavailable" in why and "ErrorAccessDenied" in why
    assert "2026-11-30T08:30:00.000Z" in why and "1 time in a row" in why
    ann = await explain.explain_user(_deps(store, graph, clock), "u-ann")
    assert "mailbox_unavailable" not in " ".join(ann["why"])


async def test_every_mailbox_refused_alike_is_one_error_naming_the_permission(
        sim: Simulator, graph: graph_client.GraphClient, clock: Clock) -> None:
    for user in (ANN, BO, CY, DEE):  # Graph checks the permission before the mailbox
        sim.quirks.users[user["id"]] = quirks.UserQuirks(mailbox=quirks.ACCESS_DENIED)
    store = await _store(clock)
    report = await _run(store, graph, clock)
    assert report["status"] == "succeeded"
    (error,) = report["errors"]
    # Three mailboxes asked: the mailbox pass reads after the plan, and Dee, deactivated
    # by this run, is no longer synced (R13: her calendars go, her mailbox is not read).
    assert (error["reason"], error["read"], error["count"], error["graphCode"]) == (
        "graph_read_forbidden", "calendars", 3, "ErrorAccessDenied")
    assert "Calendars.ReadWrite" in error["message"]
    assert ("deactivate_user", "u-dee") in _kinds(report)


async def test_a_photo_graph_will_not_give_is_an_error_on_that_user(
        graph: graph_client.GraphClient, sim: Simulator, clock: Clock) -> None:
    photo = {"contentType": "image/png", "base64": base64.b64encode(b"\x89PNG-ann").decode()}
    world, emply = _world(photoSync=True, calendarSync=False)
    for user in world["users"]:
        if user["id"] in (ANN["id"], BO["id"]):
            user["photo"] = photo
    sim.replace_tenant(world)
    emply["users"] = [u for u in emply["users"] if u["id"] not in ("u-ann", "u-bo")]
    emply["calendars"] = []
    sim.quirks.users[ANN["id"]] = quirks.UserQuirks(mailbox=quirks.UNAVAILABLE)
    store = await _store(clock, emply)
    report = await _run(store, graph, clock)  # Ann and Bo are created: photos at once
    assert report["status"] == "succeeded", report["errors"]
    assert [(e["reason"], e["entraId"], e["graphStatus"]) for e in report["errors"]] == [
        ("photo_unavailable", ANN["id"], 503)]
    photos = {c["entraId"] for c in report["changes"] if c["kind"] == "photo_set"}
    assert photos == {BO["id"]}
    assert ("deactivate_user", "u-dee") in _kinds(report)
    stored = (await store.load_state_part("faults"))["reads"]
    assert list(stored["photo"]) == [ANN["id"]]


# --- write-back ---------------------------------------------------------------------


def _employee(emp_id: str, entra: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"id": emp_id, "email": entra["mail"], "displayName": entra["displayName"],
            "givenName": entra["givenName"], "surname": entra["surname"],
            "jobTitle": None, "department": None, "mobilePhone": None,
            "resignationDate": None, "status": "active", **more}


def _writeback_world(**write_back: bool) -> dict[str, Any]:
    _, emply = _world(calendarSync=False,
                      writeBack={"create": False, "update": False, "delete": False,
                                 **write_back})
    emply["calendars"] = []
    emply["employees"] = [_employee("e-ann", ANN, jobTitle="Chief"),
                          _employee("e-bo", BO, jobTitle="Engineer"),
                          _employee("e-cy", CY, jobTitle="Designer")]
    for user in emply["users"]:
        user["employeeId"] = {"u-ann": "e-ann", "u-bo": "e-bo", "u-cy": "e-cy"}.get(user["id"])
    return emply


def _patches(sim: Simulator, entra_id: str) -> int:
    return sum(1 for r in sim.log if r["method"] == "PATCH" and entra_id in r["path"])


async def test_a_privileged_user_is_reported_once_and_not_written_until_it_changes(
        sim: Simulator, graph: graph_client.GraphClient, clock: Clock) -> None:
    sim.quirks.users[ANN["id"]] = quirks.UserQuirks(privileged=True)
    store = await _store(clock, _writeback_world(update=True))
    first = await _run(store, graph, clock)
    assert [(e["reason"], e["entraId"]) for e in first["errors"]] == [
        ("entra_user_protected", ANN["id"])]
    assert {("entra_update", "u-bo"), ("entra_update", "u-cy")} <= _kinds(first)
    assert ("entra_update", "u-ann") not in _kinds(first)
    assert _patches(sim, ANN["id"]) == 1

    clock.now = NOW + 30 * MINUTE
    dry = await _run(store, graph, clock, dry_run=True)
    assert dry["errors"] == [] and dry["skips"]["entra_user_protected"] == 1
    second = await _run(store, graph, clock)
    assert second["errors"] == [] and second["skips"]["entra_user_protected"] == 1
    assert _patches(sim, ANN["id"]) == 1  # the same write is not sent again
    answer = await explain.explain_user(_deps(store, graph, clock), "u-ann")
    assert "entra_user_protected" in " ".join(answer["why"])

    employee = (await store.read_entities("employees", ["e-ann"]))["e-ann"]
    await store.write_entities("employees", [{**employee, "jobTitle": "Chief Officer"}])
    clock.now = NOW + 60 * MINUTE
    third = await _run(store, graph, clock)  # another write: sent, and refused again
    assert _patches(sim, ANN["id"]) == 2
    assert [e["reason"] for e in third["errors"]] == ["entra_user_protected"]


async def test_writes_the_quota_cannot_fit_are_deferred_and_written_by_a_later_run(
        sim: Simulator, graph: graph_client.GraphClient, clock: Clock) -> None:
    sim.quirks.write_quota = (1, 600.0)  # another app has used Graph's write quota
    store = await _store(clock, _writeback_world(update=True))
    first = await _run(store, graph, clock)
    assert first["status"] == "succeeded" and first["errors"] == []
    assert first["skips"]["entra_write_deferred"] == 2
    assert first["counts"]["entra_update"] == 1
    sim.quirks.write_quota = None
    clock.now = NOW + 30 * MINUTE
    second = await _run(store, graph, clock)
    assert second["errors"] == [] and second["counts"]["entra_update"] == 2
    assert "entra_write_deferred" not in second["skips"]


async def test_a_upn_graph_would_refuse_is_an_error_on_that_user_and_never_sent(
        sim: Simulator, graph: graph_client.GraphClient, clock: Clock) -> None:
    emply = _writeback_world(create=True)
    emply["users"].append({"id": "u-jorg", "username": "jorg", "email": "jörg.ås@contoso.com",
                           "displayName": "Jörg Ås", "roles": ["employee"],
                           "status": "active", "employeeId": "e-jorg"})
    emply["employees"].append({**_employee("e-jorg", ANN), "email": "jörg.ås@contoso.com",
                               "displayName": "Jörg Ås"})
    store = await _store(clock, emply)
    report = await _run(store, graph, clock)
    assert report["status"] == "succeeded"
    assert [(e["reason"], e.get("userId")) for e in report["errors"]] == [
        ("upn_invalid", "u-jorg")]
    assert "'ö'" in report["errors"][0]["message"]
    assert not any(r["method"] == "POST" and r["template"] == "/users" for r in sim.log)
    answer = await explain.explain_user(_deps(store, graph, clock), "u-jorg")
    assert "upn_invalid" in " ".join(answer["why"])
