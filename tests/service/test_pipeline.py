"""The run as a pipeline of steps (`shared.run.pipeline`), on the storage fakes and the
Graph simulator's handlers behind httpx's transport seam (no socket, no Azurite): the
real msgraph-sdk pipeline, the real steps, in a fraction of a second per run.

What is checked here is the pipeline's own contract: every step reads, one plan, every
step applies in order, the outcomes are folded once; a dry run is the same pipeline
without the apply; an Emply write landing at any moment of a run costs only the users
it touched; a step that fails leaves the delta links where they were.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import pytest

from graph_simulator.state import Simulator
from shared import errors
from shared.graph import client as graph_client
from shared.run import context, pipeline
from shared.run.steps import base
from tests.e2e.tenants import G_EMPLOYEE, G_HR, emply_state, entra_user, tenant
from tests.support.memory_store import MemoryPhotoBlobs, MemoryStore

NOW = dt.datetime(2026, 11, 30, 8, 0, tzinfo=dt.UTC)
PHOTO = {"contentType": "image/png", "base64": base64.b64encode(b"\x89PNG-ann").decode()}


def _world() -> tuple[dict[str, Any], dict[str, Any]]:
    """Ann (linked by e-mail, with a photo and a calendar), Bo (new), Cy (left HR only),
    Dee (left every group: deactivated)."""
    ann = entra_user(1, "Ann Lee", photo=PHOTO, calendars=[{
        "id": "cal-ann", "name": "Calendar", "isDefaultCalendar": True, "canEdit": True,
        "events": [{"id": "ev-1", "subject": "1:1",
                    "start": {"dateTime": "2026-11-30T09:00:00", "timeZone": "UTC"},
                    "end": {"dateTime": "2026-11-30T09:30:00", "timeZone": "UTC"},
                    "showAs": "busy", "sensitivity": "normal"}]}])
    bo, cy, dee = entra_user(2, "Bo Ek"), entra_user(3, "Cy Ng"), entra_user(4, "Dee Ho")
    graph = tenant([ann, bo, cy, dee], {G_EMPLOYEE: [ann["id"], bo["id"], cy["id"]],
                                        G_HR: []})
    emply = emply_state(
        users=[{"id": "u-ann", "username": "ann@emply.test", "email": ann["mail"],
                "displayName": "Ann Lee", "roles": ["employee"]},
               {"id": "u-dee", "username": dee["userPrincipalName"], "email": dee["mail"],
                "displayName": "Dee Ho", "roles": ["employee"], "entraId": dee["id"],
                "status": "active"}],
        calendarSync=True, photoSync=True)
    return graph, emply


@pytest.fixture
def sim() -> Simulator:
    return Simulator(_world()[0])


async def _store() -> MemoryStore:
    store = MemoryStore(lambda: NOW)
    await store.import_document(_world()[1])
    return store


def _deps(store: MemoryStore, graph: graph_client.GraphClient) -> context.Deps:
    return context.Deps(store=store, graph=graph, clock=lambda: NOW, photos=MemoryPhotoBlobs())


async def _run(store: MemoryStore, graph: graph_client.GraphClient,
               **kwargs: Any) -> dict[str, Any]:
    return await pipeline.run_sync(_deps(store, graph), trigger="timer", **kwargs)


def _kinds(report: dict[str, Any]) -> list[tuple[str, str | None]]:
    return sorted((c["kind"], c.get("userId")) for c in report["changes"])


async def test_a_run_is_its_steps_read_planned_once_and_applied_in_order(
        graph: graph_client.GraphClient, monkeypatch: pytest.MonkeyPatch) -> None:
    store = await _store()
    seen: list[tuple[str, str]] = []
    monkeypatch.setattr(pipeline, "STEPS", tuple(_Spy(s, seen) for s in pipeline.STEPS))
    report = await _run(store, graph)
    assert report["status"] == "succeeded", report["errors"]
    names = [s.name for s in pipeline.STEPS]
    assert seen == [*(("read", n) for n in names), *(("apply", n) for n in names)]
    kinds = _kinds(report)
    assert ("link_user", "u-ann") in kinds and ("deactivate_user", "u-dee") in kinds
    assert ("photo_set", "u-ann") in kinds  # a user linked by the run: its photo at once
    assert [k for k, _ in kinds].count("create_user") == 2  # Bo and Cy
    # One report, folded once: its counts are its changes.
    counted: dict[str, int] = {}
    for kind, _ in kinds:
        counted[kind] = counted.get(kind, 0) + 1
    assert report["counts"] == counted
    feed = [e["kind"] for c in store.change_feed.chunks.values() for e in c.changes()]
    assert sorted(feed) == sorted(k for k, _ in kinds)
    # The next run reads the calendars of the users linked now and mirrors their events.
    second = await _run(store, graph)
    assert {k for k, _ in _kinds(second)} == {"calendar_add", "events_mirror"}
    third = await _run(store, graph)
    assert third["status"] == "succeeded" and third["changes"] == [], third["changes"]


async def test_a_dry_run_is_the_same_pipeline_without_the_apply(
        graph: graph_client.GraphClient) -> None:
    store = await _store()
    before = await store.export_document()
    dry = await _run(store, graph, dry_run=True)
    assert dry["dryRun"] is True and dry["status"] == "succeeded"
    assert await store.export_document() == before and store.state is None
    assert store.change_feed.chunks == {}
    real = await _run(store, graph)
    strip = ("linkedAt",)
    assert [_without(c, strip) for c in dry["changes"]] == [
        _without(c, strip) for c in real["changes"]]


def _without(change: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    after = {k: v for k, v in (change.get("after") or {}).items() if k not in fields}
    return {**change, "after": after}


async def test_a_step_that_fails_leaves_the_delta_links_where_they_were(
        graph: graph_client.GraphClient, monkeypatch: pytest.MonkeyPatch) -> None:
    store = await _store()
    failing = tuple(_Failing(s) if s.name == "event_push" else s for s in pipeline.STEPS)
    monkeypatch.setattr(pipeline, "STEPS", failing)
    report = await _run(store, graph)
    assert report["status"] == "failed"
    assert [e["reason"] for e in report["errors"]] == ["graph_unavailable"]
    assert "while applying" in report["errors"][0]["message"]
    assert store.state is None  # the sync-state step never ran: delta did not advance
    monkeypatch.undo()
    again = await _run(store, graph)  # reads Entra in full, plans from what was written
    assert again["status"] == "succeeded" and again["entraRead"]["fullRead"] is True
    users = {u["id"]: u for u in (await store.export_document())["users"]}
    assert users["u-dee"]["status"] == "deactivated" and users["u-ann"]["entraId"]
    assert store.state is not None
    last = await _run(store, graph)
    assert last["changes"] == [] and last["errors"] == []


@pytest.mark.parametrize("moment", range(len(pipeline.STEPS) + 1))
async def test_an_emply_write_at_any_moment_costs_only_the_user_it_touched(
        graph: graph_client.GraphClient, monkeypatch: pytest.MonkeyPatch, moment: int) -> None:
    """Emply (an operator, the Emply API) edits Dee while the run is under way, before
    step number `moment` applies: the run finishes; Dee's own changes are skipped
    (`concurrent_change`) when the edit came before they were written; everyone else is
    applied; and the next runs converge."""
    store = await _store()
    _edit_before(monkeypatch, moment, store, "u-dee")
    report = await _run(store, graph)
    assert report["status"] == "succeeded", report["errors"]
    assert {(e["reason"], e.get("userId")) for e in report["errors"]} <= {
        ("concurrent_change", "u-dee")}
    assert [k for k, _ in _kinds(report)].count("create_user") == 2
    assert ("link_user", "u-ann") in _kinds(report)
    await _converges(store, graph, monkeypatch, moment)


@pytest.mark.parametrize("moment", range(len(pipeline.STEPS) + 1))
async def test_an_emply_write_during_a_run_from_the_cached_emply_copy(
        sim: Simulator, graph: graph_client.GraphClient, monkeypatch: pytest.MonkeyPatch,
        moment: int) -> None:
    """The same once the Emply side comes from the last run's snapshot (the usual run):
    Ann leaves her group while Emply edits Ann, then Bo's edit lands mid-run."""
    store = await _store()
    await _run(store, graph)
    await _run(store, graph)
    changed = sim.current.users.copy()
    world = _world()[0]
    world["groups"][0]["members"] = [m for m in world["groups"][0]["members"]
                                     if m != world["users"][0]["id"]]
    sim.replace_tenant(world)
    assert changed  # the tenant really changed: Ann is out
    _edit_before(monkeypatch, moment, store, "u-ann")
    report = await _run(store, graph)
    assert report["status"] == "succeeded", report["errors"]
    assert {(e["reason"], e.get("userId")) for e in report["errors"]} <= {
        ("concurrent_change", "u-ann")}
    await _converges(store, graph, monkeypatch, moment, "u-ann")


def _edit_before(monkeypatch: pytest.MonkeyPatch, moment: int, store: MemoryStore,
                 user_id: str) -> None:
    steps = list(pipeline.STEPS)
    if moment < len(steps):
        steps[moment] = _EditsFirst(steps[moment], store, user_id)
    monkeypatch.setattr(pipeline, "STEPS", tuple(steps))


async def _converges(store: MemoryStore, graph: graph_client.GraphClient,
                     monkeypatch: pytest.MonkeyPatch, moment: int,
                     user_id: str = "u-dee") -> None:
    users = {u["id"]: u for u in (await store.export_document())["users"]}
    if moment < len(pipeline.STEPS):
        assert users[user_id]["displayName"] == "edited in Emply"  # their edit stands
    monkeypatch.undo()
    for _ in range(3):
        last = await _run(store, graph)
    assert last["changes"] == [] and last["errors"] == [], last
    users = {u["id"]: u for u in (await store.export_document())["users"]}
    assert users[user_id]["status"] == "deactivated"


class _Spy(base.Step):
    def __init__(self, step: base.Step, seen: list[tuple[str, str]]) -> None:
        self.step, self.seen, self.name = step, seen, step.name

    async def read(self, run: context.Run) -> None:
        self.seen.append(("read", self.name))
        await self.step.read(run)

    def plan_input(self, run: context.Run, entra: Any) -> Any:
        return self.step.plan_input(run, entra)

    async def apply(self, run: context.Run, applied: base.Applied) -> base.StepOutcome:
        self.seen.append(("apply", self.name))
        return await self.step.apply(run, applied)


class _Failing(_Spy):
    def __init__(self, step: base.Step) -> None:
        super().__init__(step, [])

    async def apply(self, run: context.Run, applied: base.Applied) -> base.StepOutcome:
        raise errors.TemporaryFailure("graph_unavailable", "Graph answered 503 to every retry")


class _EditsFirst(_Spy):
    """Emply writes `user_id` (no ETag: a plain edit) before the step applies."""

    def __init__(self, step: base.Step, store: MemoryStore, user_id: str) -> None:
        super().__init__(step, [])
        self.store, self.user_id = store, user_id

    async def apply(self, run: context.Run, applied: base.Applied) -> base.StepOutcome:
        theirs = (await self.store.read_entities("users", [self.user_id]))[self.user_id]
        await self.store.write_entities("users", [{**theirs, "displayName": "edited in Emply"}])
        return await self.step.apply(run, applied)
