"""A run that plans the world in parts (`shared.run.world.parts_of_everything`) does
what one plan of the whole world does: the same changes, the same Emply side after,
and the next run, which plans only what changed, agrees with it too."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from graph_simulator import delta as sim_delta
from shared.graph import client as graph_client
from shared.run import context, pipeline, world
from shared.run.steps import directory
from tests.e2e.tenants import G_EMPLOYEE, G_HR, emply_state, entra_user, staff, tenant
from tests.support.memory_store import MemoryStore
from tests.support.simulator import RunningSimulator, running_simulator

NOW = dt.datetime(2026, 11, 30, 8, 0, tzinfo=dt.UTC)
PEOPLE = staff(14)


def _tenant(people: list[dict[str, Any]]) -> dict[str, Any]:
    return tenant(people, {G_EMPLOYEE: [p["id"] for p in people[:10]],
                           G_HR: [p["id"] for p in people[8:]]})


def _emply() -> dict[str, Any]:
    """Half the people already in Emply (found by username), one with a name that two
    Entra users' mails share (a tie), one employee without an account."""
    users = [{"id": f"u-{i}", "username": p["userPrincipalName"], "email": p["mail"],
              "roles": ["employee"]} for i, p in enumerate(PEOPLE[::2])]
    users.append({"id": "u-shared", "username": "shared@contoso.com",
                  "email": PEOPLE[1]["mail"], "roles": ["employee"]})
    employees = [{"id": "e-3", "email": PEOPLE[3]["mail"]}]
    return emply_state(users=users, employees=employees)


@pytest.fixture
def sim() -> Iterator[RunningSimulator]:
    with running_simulator(_tenant(PEOPLE)) as running:
        yield running


async def _run(store: MemoryStore, sim: RunningSimulator) -> dict[str, Any]:
    graph = graph_client.create_graph_client(sim.url, env={})
    try:
        return await pipeline.run_sync(
            context.Deps(store=store, graph=graph, clock=lambda: NOW), trigger="timer")
    finally:
        await graph.aclose()


def _count_parts(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The parts the next runs plan, as `world.parts_of_everything` gives them."""
    parts: list[Any] = []
    real_parts = world.parts_of_everything

    def counted(*args: Any, **kwargs: Any) -> Iterator[Any]:
        for part in real_parts(*args, **kwargs):
            parts.append(part)
            yield part

    monkeypatch.setattr(world, "parts_of_everything", counted)
    return parts


def _what(report: dict[str, Any]) -> list[tuple[Any, ...]]:
    return sorted((c["kind"], c["userId"], c["entraId"], c["reason"])
                  for c in report["changes"])


def _side(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The Emply users, without what differs by run (ids and times of the run)."""
    return [{k: v for k, v in u.items() if k not in ("lastChange", "history", "linkedAt")}
            for u in doc["users"]]


async def test_parts_plan_what_one_plan_does(sim: RunningSimulator,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    whole = MemoryStore(lambda: NOW)
    await whole.import_document(_emply())
    parted = MemoryStore(lambda: NOW)
    await parted.import_document(_emply())

    one = await _run(whole, sim)
    monkeypatch.setattr(world, "PART_SIZE", 3)
    parts = _count_parts(monkeypatch)
    many = await _run(parted, sim)
    assert len(parts) > 3 and all(len(p) <= 6 for p in parts[:-1])
    assert one["status"] == many["status"] == "succeeded"
    assert _what(many) == _what(one) and many["counts"] == one["counts"]
    assert [e["reason"] for e in many["errors"]] == [e["reason"] for e in one["errors"]]
    assert _side(await parted.export_document()) == _side(await whole.export_document())

    # People leave and join; the next runs plan only that, in both stores, alike.
    changed = _tenant(PEOPLE)
    changed["groups"][0]["members"] = [p["id"] for p in PEOPLE[2:10]]
    sim.put_tenant(changed)
    again = [await _run(store, sim) for store in (whole, parted)]
    assert _what(again[0]) == _what(again[1]) and again[0]["changes"]
    assert not [e for r in again for e in r["errors"] if e["reason"] == "sync_state_unreadable"]
    assert _side(await parted.export_document()) == _side(await whole.export_document())
    assert copy.deepcopy(again[1]["skips"]) == again[0]["skips"]


class _ReadsCounted(MemoryStore):
    """The store, with the users a run read whole before rewriting them."""

    def __init__(self) -> None:
        super().__init__(lambda: NOW)
        self.read_users: list[str] = []
        self.user_writes = 0

    async def read_entities(self, kind: str, ids: Any, **kwargs: Any) -> Any:
        ids = list(ids)
        if kind == "users":
            self.read_users.extend(ids)
        return await super().read_entities(kind, ids, **kwargs)

    async def write_built(self, kind: str, ids: Any, build: Any, **kwargs: Any) -> Any:
        self.user_writes += kind == "users"
        return await super().write_built(kind, ids, build, **kwargs)


@pytest.mark.parametrize("read_chunk", [1000, 1])
async def test_a_user_without_history_is_written_unread_and_history_is_kept(
        sim: RunningSimulator, monkeypatch: pytest.MonkeyPatch, read_chunk: int) -> None:
    """A user the run's scan found without `lastChange` and `history` is whole in the
    copy: it is written without being read first. One with a history is read, and its
    history goes on; so does everyone's at the next run, which reads what it rewrites
    (with `read_chunk` 1: a chunk of partitions at a time, each read then written)."""
    monkeypatch.setattr(directory, "READ_CHUNK", read_chunk)
    store = _ReadsCounted()
    doc = _emply()
    old = {"kind": "set_roles", "rule": "R4", "reason": "role_changed", "message": "before",
           "runId": "r0", "at": "2026-11-01T00:00:00Z"}
    doc["users"][0].update(lastChange=old, history=[old])
    await store.import_document(doc)

    first = await _run(store, sim)
    assert first["status"] == "succeeded"
    linked = {c["userId"] for c in first["changes"] if c["kind"] == "link_user"}
    assert "u-0" in linked and len(linked) > 3
    assert store.read_users == ["u-0"]
    users = {u["id"]: u for u in (await store.export_document())["users"]}
    assert users["u-0"]["history"][0] == old and len(users["u-0"]["history"]) >= 2
    assert all(len(users[u]["history"]) >= 1 for u in linked)

    changed = _tenant(PEOPLE)
    changed["groups"][0]["members"] = [p["id"] for p in PEOPLE[2:10]]  # two leave
    sim.put_tenant(changed)
    store.read_users.clear()
    store.user_writes = 0
    second = await _run(store, sim)
    rewritten = {c["userId"] for c in second["changes"] if c["userId"] in users}
    assert rewritten and rewritten <= set(store.read_users)
    assert store.user_writes == (1 if read_chunk > len(rewritten) else len(rewritten))
    after = {u["id"]: u for u in (await store.export_document())["users"]}
    for user_id in rewritten:
        assert after[user_id]["history"][:-1] == users[user_id]["history"][-19:]


async def test_a_groups_members_in_parts_over_pages_are_all_read(
        sim: RunningSimulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """Graph may split a large group's members over pages, sending the group again with
    the next part: the run merges the parts, and plans what it plans when they come whole
    (the first read and a delta round both)."""
    whole, split = MemoryStore(lambda: NOW), MemoryStore(lambda: NOW)
    for store in (whole, split):
        await store.import_document(_emply())
    one = await _run(whole, sim)
    monkeypatch.setattr(sim_delta, "GROUP_MEMBERS_PER_PAGE", 2)
    sim.reset_requests()
    parted = await _run(split, sim)
    assert sim.requests()["byEndpoint"]["GET /groups/delta"] > 3
    assert _what(parted) == _what(one) and parted["counts"] == one["counts"]
    assert _side(await split.export_document()) == _side(await whole.export_document())

    changed = _tenant(PEOPLE)
    changed["groups"][0]["members"] = [p["id"] for p in PEOPLE[4:12]]
    sim.put_tenant(changed)
    later = await _run(split, sim)
    monkeypatch.setattr(sim_delta, "GROUP_MEMBERS_PER_PAGE", 2000)
    assert _what(later) == _what(await _run(whole, sim)) and later["changes"]


G_ELSEWHERE = "10000000-0000-4000-8000-000000000009"


async def test_users_outside_the_scope_are_in_no_part(monkeypatch: pytest.MonkeyPatch) -> None:
    """An Entra user out of scope and not linked is kept as its id only and shares no
    key: no part holds it, and the parts plan what one plan of the world does. One
    linked to an Emply user keeps its attributes and is planned (R6)."""
    outside = [entra_user(500 + i, f"Other{i} Elsewhere") for i in range(12)]
    people = _tenant(PEOPLE)
    whole_tenant = {**people, "users": [*people["users"], *outside],
                    "groups": [*people["groups"], {"id": G_ELSEWHERE, "displayName":
                                                   "Elsewhere", "members": [
                                                       u["id"] for u in outside]}]}
    doc = _emply()
    doc["users"].append({"id": "u-linked", "username": outside[0]["userPrincipalName"],
                         "email": outside[0]["mail"], "roles": ["employee"],
                         "entraId": outside[0]["id"], "status": "active"})
    stores = [MemoryStore(lambda: NOW), MemoryStore(lambda: NOW)]
    for store in stores:
        await store.import_document(doc)
    parts = _count_parts(monkeypatch)
    with running_simulator(whole_tenant) as sim:
        one = await _run(stores[0], sim)
        assert len(parts) == 1
        monkeypatch.setattr(world, "PART_SIZE", 3)
        many = await _run(stores[1], sim)
    planned = {entra_id for part in parts for entra_id in part.entra}
    assert outside[0]["id"] in planned
    assert not planned & {u["id"] for u in outside[1:]}
    assert {p["id"] for p in PEOPLE} <= planned
    assert len(parts) > 3
    assert one["status"] == many["status"]
    assert _what(many) == _what(one) and many["counts"] == one["counts"]
    assert [(c["kind"], c["userId"]) for c in one["changes"] if c["userId"] == "u-linked"]
    assert _side(await stores[1].export_document()) == _side(await stores[0].export_document())
