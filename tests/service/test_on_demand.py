"""One user now (`shared.run.on_demand`), in the FAQ's words, on the storage fakes and the
Graph simulator's handlers behind httpx's transport seam (the real msgraph-sdk pipeline,
no socket): a new hire added to the group is created now; a leaver removed from all
groups is deactivated now; an employee without an account gets the FAQ's answer and
nothing is created; a user of another tenant is refused; a dry run shows what the real
one does; a run holding the lease refuses it; and the next full run plans nothing more
for that user, moves its delta links from where the last full run left them, and sees
R7's window the on-demand run left.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest

from graph_simulator.inprocess import InProcessTransport
from graph_simulator.state import Simulator
from shared.graph import client as graph_client
from shared.run import context, indexes, on_demand, pipeline
from shared.run import state as sync_state
from shared.store import errors as store_errors
from tests.e2e.tenants import G_EMPLOYEE, G_HR, TENANT_ID, emply_state, entra_user, tenant
from tests.support.memory_store import MemoryPhotoBlobs, MemoryStore

NOW = dt.datetime(2026, 11, 30, 8, 0, tzinfo=dt.UTC)
URL = "http://127.0.0.1:1/v1.0"  # never dialled: the transport answers in-process
PHOTO = {"contentType": "image/png", "base64": base64.b64encode(b"\x89PNG-ann").decode()}
CALENDAR = {"id": "cal-ann", "name": "Calendar", "isDefaultCalendar": True, "canEdit": True,
            "events": [{"id": "ev-1", "subject": "1:1",
                        "start": {"dateTime": "2026-11-30T09:00:00", "timeZone": "UTC"},
                        "end": {"dateTime": "2026-11-30T09:30:00", "timeZone": "UTC"},
                        "showAs": "busy", "sensitivity": "normal"}]}

ANN = entra_user(1, "Ann Lee", photo=PHOTO, calendars=[CALENDAR])
BO = entra_user(2, "Bo Ek")  # the new hire
CY = entra_user(3, "Cy Ng")  # a leaver
DEE = entra_user(4, "Dee Ho")  # another leaver
KIM = entra_user(5, "Kim Yu")  # an employee without an account
EVE = entra_user(6, "Eve Ra", calendars=[{**CALENDAR, "id": "cal-eve"}])  # stays


def _tenant(employee: list[str], hr: list[str] | None = None) -> dict[str, Any]:
    users = [copy.deepcopy(u) for u in (ANN, BO, CY, DEE, KIM, EVE)]
    return tenant(users, {G_EMPLOYEE: employee, G_HR: hr or []})


BEFORE = _tenant([ANN["id"], CY["id"], DEE["id"], KIM["id"], EVE["id"]])
"""What the last full run saw: Bo not hired yet, Cy and Dee still in Employee."""
AFTER = _tenant([ANN["id"], BO["id"], KIM["id"], EVE["id"]])
"""Now: Bo added to Employee, Cy and Dee removed from every group."""


def _emply(**settings: Any) -> dict[str, Any]:
    return emply_state(
        users=[{"id": "u-ann", "username": ANN["userPrincipalName"], "email": ANN["mail"],
                "displayName": "Ann Lee", "roles": ["employee"]}],
        employees=[{"id": "e-kim", "email": KIM["mail"], "displayName": "Kim Yu"}],
        **settings)


class World:
    """The store, the simulator and a Graph client on it."""

    def __init__(self, sim: Simulator, store: MemoryStore,
                 graph: graph_client.GraphClient) -> None:
        self.sim, self.store, self.graph = sim, store, graph
        self.deps = context.Deps(store=store, graph=graph, clock=lambda: NOW,
                                 photos=MemoryPhotoBlobs())

    async def full_run(self, **kwargs: Any) -> dict[str, Any]:
        return await pipeline.run_sync(self.deps, trigger="timer", **kwargs)

    async def one(self, key: str, **kwargs: Any) -> dict[str, Any]:
        return await on_demand.sync_user(self.deps, key, **kwargs)

    async def users(self) -> dict[str, dict[str, Any]]:
        return {u["id"]: u for u in (await self.store.export_document())["users"]}

    def delta_links(self) -> dict[str, str]:
        assert self.store.state is not None
        links: dict[str, str] = self.store.state["mirrorHead"]["deltaLinks"]
        return links


async def _world(emply: dict[str, Any]) -> AsyncIterator[World]:
    sim = Simulator(copy.deepcopy(BEFORE))
    store = MemoryStore(lambda: NOW)
    await store.import_document(emply)
    client = graph_client.create_graph_client(URL, env={}, transport=InProcessTransport(sim))
    try:
        world = World(sim, store, client)
        first = await world.full_run()
        assert first["status"] == "succeeded", first["errors"]
        sim.replace_tenant(copy.deepcopy(AFTER))
        yield world
    finally:
        await client.aclose()


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async for made in _world(_emply()):
        yield made


def _step(report: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in report["user"]["steps"] if s["step"] == name)
    return found


def _questions(report: dict[str, Any]) -> list[str]:
    return [f["question"] for f in report["user"]["faq"]]


def _for(report: dict[str, Any], user_id: str) -> list[tuple[str, str]]:
    return [(c["kind"], c["reason"]) for c in report["changes"] if c["userId"] == user_id]


async def test_a_new_hire_added_to_the_group_is_created_now(world: World) -> None:
    links = world.delta_links()
    assert world.store.state is not None
    index_before = world.store.state["index"]
    assert index_before is not None
    report = await world.one(BO["userPrincipalName"])
    assert report["trigger"] == "on_demand" and report["status"] == "succeeded"
    assert report["user"]["outcome"] == "applied"
    assert _step(report, "scope")["status"] == "in_scope"
    assert [g["displayName"] for g in _step(report, "scope")["groups"]] == ["Employee"]
    assert _step(report, "match")["status"] == "no_match"
    assert "a new Emply user is created for it (R4)" in _step(report, "match")["why"][0]
    bo_id = f"entra-{BO['id']}"
    assert _for(report, bo_id) == [("create_user", "create_user")]
    assert _step(report, "changes")["status"] == "applied"
    assert (await world.users())[bo_id]["entraId"] == BO["id"]
    # Recorded as a run, in the change feed; the delta links are where they were.
    assert (await world.store.get_run(report["runId"]))["user"]["outcome"] == "applied"
    feed = [e for c in world.store.change_feed.chunks.values() for e in c.changes()]
    assert [(e["kind"], e["runId"]) for e in feed if e["userId"] == bo_id] == [
        ("create_user", report["runId"])]
    assert world.delta_links() == links
    # The Emply index took the run's writes and the version marker they left: the next
    # run is served from it.
    assert world.store.state is not None and world.store.state["index"] != index_before
    state, _ = await sync_state.load_state(world.store)
    saved = await indexes.load_emply(world.store, state)
    assert saved is not None and saved.version == await world.store.current_version()
    found = saved.users.by_id(bo_id)
    assert found is not None and found[1][1]["entraId"] == BO["id"]
    # Nobody else was touched: Cy and Dee left their groups, but only a full run sees it.
    assert {u["status"] for u in (await world.users()).values()} == {"active"}
    # Apply, then plan again gives nothing — for that user, across the next full run too.
    again = await world.one(BO["userPrincipalName"], dry_run=True)
    assert again["changes"] == [] and again["user"]["outcome"] == "nothing"
    full = await world.full_run()
    assert full["status"] == "succeeded", full["errors"]
    assert _for(full, bo_id) == []
    assert sorted(c["userId"] for c in full["changes"] if c["kind"] == "deactivate_user") == [
        f"entra-{CY['id']}", f"entra-{DEE['id']}"]


async def test_a_leaver_removed_from_all_groups_is_deactivated_now(world: World) -> None:
    cy_id = f"entra-{CY['id']}"
    report = await world.one(CY["mail"])
    assert report["user"]["outcome"] == "applied", report["user"]
    scope = _step(report, "scope")
    assert scope["status"] == "out_of_scope" and scope["reason"] == "not_in_configured_group"
    assert _step(report, "match")["status"] == "linked"
    assert _for(report, cy_id) == [("deactivate_user", "removed_from_groups")]
    assert "What happens to a synchronized user when it is removed from the Entra ID " \
           "group?" in _questions(report)
    users = await world.users()
    assert users[cy_id]["status"] == "deactivated"
    assert users[cy_id]["deactivationReason"] == "removed_from_groups"
    # R7's rolling window counts it; the residual of the last full run is not reused.
    assert world.store.state is not None
    assert world.store.state["guardWindow"] == [{"at": "2026-11-30T08:00:00Z", "count": 1}]
    assert world.store.state["residual"] is None
    full = await world.full_run()
    assert _for(full, cy_id) == [] and "reusedPlanOf" not in full
    assert _for(full, f"entra-{DEE['id']}") == [("deactivate_user", "removed_from_groups")]


async def test_an_employee_without_an_account_gets_the_faq_answer_and_nothing_is_created(
        world: World) -> None:
    before = await world.store.export_document()
    report = await world.one(KIM["mail"])
    assert report["changes"] == [] and report["user"]["outcome"] == "nothing"
    match = _step(report, "match")
    assert match["status"] == "not_matched" and match["reason"] == "employee_without_account"
    assert "create an account for the employee first" in match["why"][0]
    assert [e["reason"] for e in _step(report, "errors")["errors"]] == [
        "employee_without_account"]
    assert "Why is there an error in synchronization of users?" in _questions(report)
    assert (await world.store.export_document())["users"] == before["users"]


async def test_a_user_of_another_tenant_is_refused_with_the_reason(world: World) -> None:
    before = await world.store.export_document()
    report = await world.one("bob@fabrikam.com")
    assert report["user"]["outcome"] == "refused" and report["changes"] == []
    scope = _step(report, "scope")
    assert scope["status"] == "refused" and scope["reason"] == "other_tenant"
    assert "fabrikam.com is not one of the tenant's verified domains (contoso.com)" in \
        scope["why"][0]
    assert await world.store.export_document() == before


async def test_a_user_linked_in_another_tenant_is_deactivated_as_a_full_run_would(
        world: World) -> None:
    doc = await world.store.export_document()
    ann = next(u for u in doc["users"] if u["id"] == "u-ann")
    ann.update({"tenantId": "11111111-2222-4333-8444-555555555555",
                "entraId": "99999999-0000-4000-8000-000000000001",
                "username": "ann@fabrikam.com", "email": "ann@fabrikam.com"})
    await world.store.import_document(doc, replace=True)
    report = await world.one("u-ann")
    scope = _step(report, "scope")
    assert scope["reason"] == "tenant_changed" and "(other tenant)" in scope["why"][0]
    assert _for(report, "u-ann") == [("deactivate_user", "tenant_changed")]
    full = await world.full_run()
    assert _for(full, "u-ann") == []


async def test_nothing_answers_to_the_key_is_not_a_run(world: World) -> None:
    runs = await world.store.list_runs(50)
    with pytest.raises(on_demand.UserNotFound):
        await world.one("00000000-0000-4000-8000-0000000000ff")
    assert await world.store.list_runs(50) == runs


async def test_a_dry_run_shows_what_the_real_one_does(world: World) -> None:
    before = await world.store.export_document()
    state = copy.deepcopy(world.store.state)
    dry = await world.one(BO["mail"], dry_run=True)
    assert dry["dryRun"] is True and dry["user"]["outcome"] == "planned"
    assert _step(dry, "changes")["status"] == "would_apply"
    assert await world.store.export_document() == before and world.store.state == state
    real = await world.one(BO["mail"])
    assert real["changes"] == dry["changes"]  # one clock: even linkedAt is the same
    assert {k: v for k, v in real["user"].items() if k not in ("outcome", "steps")} == {
        k: v for k, v in dry["user"].items() if k not in ("outcome", "steps")}


async def test_a_run_holding_the_lease_refuses_it(world: World) -> None:
    await world.store.acquire_lease("20261130T080000Z-0000beef", "timer")
    with pytest.raises(store_errors.RunInProgress) as refused:
        await world.one(BO["userPrincipalName"])
    assert refused.value.running_run_id == "20261130T080000Z-0000beef"
    with pytest.raises(store_errors.RunInProgress):
        await world.one(BO["userPrincipalName"], dry_run=True)
    assert f"entra-{BO['id']}" not in await world.users()


async def test_the_guard_holds_one_user_when_the_rolling_window_is_full() -> None:
    guard = {"maxCount": 1, "maxPercent": 100, "minCount": 1}
    async for world in _world(_emply(deactivationGuard=guard)):
        first = await world.one(CY["userPrincipalName"])
        assert first["user"]["outcome"] == "applied"
        second = await world.one(DEE["userPrincipalName"])
        assert second["status"] == "needs_approval" and second["user"]["outcome"] == "held"
        assert _step(second, "changes")["status"] == "held"
        assert [c["userId"] for c in second["held"]] == [f"entra-{DEE['id']}"]
        held = [e for e in _step(second, "errors")["errors"] if e["reason"] == "held_by_guard"]
        assert "with 1 applied without approval in the last 24 h" in held[0]["message"]
        assert (await world.users())[f"entra-{DEE['id']}"]["status"] == "active"
        # The full run holds it too (the window counts Cy), and approving it there works.
        full = await world.full_run()
        assert [c["userId"] for c in full["held"]] == [f"entra-{DEE['id']}"]
        approved = await world.full_run(approve_deactivations=1)
        assert _for(approved, f"entra-{DEE['id']}") == [
            ("deactivate_user", "removed_from_groups")]


async def test_a_linked_users_photo_calendars_and_events_come_now_and_others_keep_theirs(
) -> None:
    async for world in _world(_emply(calendarSync=True, photoSync=True)):
        await world.full_run()  # Ann's calendars and events, as a full run gets them
        await world.full_run()  # Eve's too (created by the first)
        eve = f"entra-{EVE['id']}"
        states = copy.deepcopy(world.store.mailbox_states().states)
        assert {"u-ann", eve} <= set(states)
        doc = await world.store.export_document()
        ann = next(u for u in doc["users"] if u["id"] == "u-ann")
        ann["photo"] = None  # as if her photo were new
        doc["events"] = [e for e in doc["events"] if e["userId"] != "u-ann"]
        await world.store.import_document(doc, replace=True)
        report = await world.one("u-ann")
        kinds = sorted(k for k, _ in _for(report, "u-ann"))
        assert kinds == ["events_mirror", "photo_set"], report["changes"]
        after = world.store.mailbox_states().states
        assert after[eve] == states[eve]  # Eve's mailbox is not read, her state kept
        assert after["u-ann"]["calendars"]["cal-ann"][3][1] == 1  # her event, mirrored again
        full = await world.full_run()
        assert _for(full, "u-ann") == [] and _for(full, f"entra-{EVE['id']}") == []
        assert [e for e in full["errors"] if e.get("userId") == "u-ann"] == []


async def test_an_on_demand_run_that_changes_nothing_leaves_the_residual(world: World) -> None:
    full = await world.full_run()
    assert full["status"] == "succeeded"
    state = copy.deepcopy(world.store.state)
    report = await world.one(EVE["userPrincipalName"])
    assert report["changes"] == [] and report["user"]["outcome"] == "nothing"
    assert _step(report, "match")["matchStep"] == 1
    assert world.store.state == state
    again = await world.full_run()
    assert again.get("reusedPlanOf") == full["runId"]


async def test_the_integration_removed_refuses_without_reading_graph() -> None:
    async for world in _world(_emply()):
        doc = await world.store.export_document()
        doc["settings"]["enabled"] = False
        await world.store.import_document(doc, replace=True)
        report = await world.one(BO["userPrincipalName"])
        assert _step(report, "scope")["reason"] == "integration_disabled"
        assert report["user"]["outcome"] == "refused" and report["changes"] == []
        assert report["entraRead"]["requests"] == 0


def test_the_tenant_of_the_fixtures_is_the_configured_one() -> None:
    assert _emply()["settings"]["tenantId"] == TENANT_ID == BEFORE["organization"]["id"]


async def test_an_entra_user_claiming_the_same_emply_user_earlier_is_read_and_wins() -> None:
    """Fay (username = Gil's UPN, e-mail = Hal's mail) is claimed by Gil at R3 step 2 and
    by Hal at step 3: a full run gives her to Gil. One user now for Hal, asked by his
    object id, reads Gil too and links nobody to Hal."""
    gil, hal = entra_user(7, "Gil Po"), entra_user(8, "Hal Ri")
    fay = {"id": "u-fay", "username": gil["userPrincipalName"], "email": hal["mail"],
           "displayName": "Fay", "roles": ["employee"]}
    sim = Simulator(tenant([copy.deepcopy(gil), copy.deepcopy(hal)], {G_EMPLOYEE: [], G_HR: []}))
    store = MemoryStore(lambda: NOW)
    await store.import_document(emply_state(users=[fay]))
    client = graph_client.create_graph_client(URL, env={}, transport=InProcessTransport(sim))
    try:
        world = World(sim, store, client)
        await world.full_run()
        sim.replace_tenant(tenant([copy.deepcopy(gil), copy.deepcopy(hal)],
                                  {G_EMPLOYEE: [gil["id"], hal["id"]], G_HR: []}))
        report = await world.one(hal["id"])
        assert report["changes"] == [], report["changes"]
        match = _step(report, "match")
        assert match["status"] == "not_matched" and match["reason"] == "email_taken"
        assert [u["id"] for u in report["user"]["entraUsers"]] == [hal["id"]]
        full = await world.full_run()
        assert ("link_user", "username") in _for(full, "u-fay")
    finally:
        await client.aclose()
