"""`shared.run.pipeline.run_sync` against the in-memory storage fakes and the real Graph
simulator (over HTTP, through msgraph-sdk): the run's storage steps seen from outside,
without Azurite. The fakes keep the Azure store's contract
(`tests/store/test_protocol_contract.py`)."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from typing import Any

import pytest

from shared.graph import client as graph_client
from shared.run import context, lease, pipeline
from shared.store import LeaseLost, RunInProgress
from shared.store.protocols import LoadedEmply
from tests.e2e.tenants import G_EMPLOYEE, G_HR, emply_state, staff, tenant
from tests.support.memory_store import MemoryStore
from tests.support.simulator import RunningSimulator, running_simulator

NOW = dt.datetime(2026, 11, 30, 8, 0, tzinfo=dt.UTC)


def _tenant(n: int) -> dict[str, Any]:
    users = staff(n)
    return tenant(users, {G_EMPLOYEE: [u["id"] for u in users], G_HR: []})


def _emply_user(entra: Mapping[str, Any]) -> dict[str, Any]:
    """An Emply user the sync links to `entra` by e-mail (R3)."""
    return {"id": f"emply-{entra['id'][-4:]}", "username": entra["userPrincipalName"],
            "email": entra["mail"], "displayName": entra["displayName"],
            "roles": ["employee"]}


@pytest.fixture
def sim() -> Iterator[RunningSimulator]:
    with running_simulator(_tenant(4)) as running:
        yield running


@pytest.fixture
async def graph(sim: RunningSimulator) -> AsyncIterator[graph_client.GraphClient]:
    client = graph_client.create_graph_client(sim.url, env={})
    try:
        yield client
    finally:
        await client.aclose()


async def _store(doc: dict[str, Any], store: MemoryStore | None = None) -> MemoryStore:
    store = store or MemoryStore(lambda: NOW)
    await store.import_document(doc)
    return store


async def _run(store: MemoryStore, graph: graph_client.GraphClient,
               **kwargs: Any) -> dict[str, Any]:
    return await pipeline.run_sync(context.Deps(store=store, graph=graph, clock=lambda: NOW),
                                  trigger="timer", **kwargs)


async def test_a_normal_run(sim: RunningSimulator, graph: graph_client.GraphClient) -> None:
    entra = sim.tenant()["users"]
    store = await _store(emply_state(users=[_emply_user(entra[0])]))
    report = await _run(store, graph)
    assert report["status"] == "succeeded" and report["errors"] == [], report["errors"]
    assert report["counts"] == {"link_user": 1, "create_user": 3}
    users = {u["username"]: u for u in (await store.export_document())["users"]}
    assert {u["userPrincipalName"] for u in entra} <= set(users)
    assert users[entra[0]["userPrincipalName"]]["entraId"] == entra[0]["id"]
    # the state names the indexes the run saved, and the lease is free again
    assert store.state is not None and store.state["index"] is not None
    assert {name.split("-")[1] for name in store.indexes} == {"entra", "emply"}
    assert await store.current_lease() is None
    assert [r["runId"] for r in await store.list_runs()] == [report["runId"]]
    assert await store.get_run(report["runId"]) == report


async def test_a_run_is_refused_while_another_holds_the_lease(
        graph: graph_client.GraphClient) -> None:
    store = await _store(emply_state())
    await store.acquire_lease("other-run", "cli")
    before = (await store.export_document(), await store.current_version())
    with pytest.raises(RunInProgress) as info:
        await _run(store, graph)
    assert info.value.running_run_id == "other-run"
    assert (await store.export_document(), await store.current_version()) == before
    assert await store.list_runs() == [] and store.state is None
    assert (await store.current_lease() or {}).get("runId") == "other-run"


async def test_a_failed_graph_read_leaves_the_state_untouched(
        sim: RunningSimulator, graph: graph_client.GraphClient) -> None:
    store = await _store(emply_state())
    first = await _run(store, graph)
    assert first["status"] == "succeeded"
    state, indexes = copy.deepcopy(store.state), copy.deepcopy(store.indexes)
    emply, version = await store.export_document(), await store.current_version()
    sim.put_tenant(_tenant(6))  # two joiners ...
    sim.set_faults("/users/delta", 503, times=-1)  # ... that the run cannot read
    report = await _run(store, graph)
    assert report["status"] == "failed"
    assert [e["reason"] for e in report["errors"]] == ["graph_unavailable"]
    assert store.state == state and store.indexes == indexes
    assert await store.export_document() == emply
    assert await store.current_version() == version
    assert await store.current_lease() is None


async def test_no_change_reuses_the_last_outcome_and_writes_no_emply_entity(
        graph: graph_client.GraphClient) -> None:
    store = await _store(emply_state())
    first = await _run(store, graph)
    assert first["counts"] == {"create_user": 4}
    version, rows = await store.current_version(), copy.deepcopy(store.rows)
    second = await _run(store, graph)
    assert second["status"] == "succeeded" and second["counts"] == {}
    assert second["reusedPlanOf"] == first["runId"]
    assert await store.current_version() == version and store.rows == rows
    assert store.state is not None and store.state["lastRunId"] == second["runId"]


class _EditedMeanwhile(MemoryStore):
    """Another writer (Emply, an operator) edits `user_id` between the run's load and its
    writes: a write without the run's `LoadedEmply`."""

    def __init__(self, user_id: str) -> None:
        super().__init__(lambda: NOW)
        self.user_id = user_id

    async def write_built(self, kind: str, ids: Iterable[str],
                          build: Callable[[str], Mapping[str, Any]], *,
                          loaded: LoadedEmply | None = None,
                          skip_conflicts: bool = False) -> list[str]:
        if kind == "users" and self.user_id:
            theirs = (await self.read_entities("users", [self.user_id]))[self.user_id]
            await self.write_entities("users", [{**theirs, "displayName": "edited in Emply"}])
            self.user_id = ""
        return await super().write_built(kind, ids, build, loaded=loaded,
                                         skip_conflicts=skip_conflicts)


async def test_an_emply_write_conflict_skips_that_user_and_keeps_the_other_edit(
        sim: RunningSimulator, graph: graph_client.GraphClient) -> None:
    """Only the entity Emply wrote meanwhile is skipped (a per-user `concurrent_change`);
    the run finishes, keeps no residual, and its change feed leaves that user out."""
    entra = sim.tenant()["users"]
    linked = _emply_user(entra[1])
    store = await _store(emply_state(users=[linked]), _EditedMeanwhile(linked["id"]))
    report = await _run(store, graph)
    assert report["status"] == "succeeded"
    assert [(e["reason"], e.get("userId")) for e in report["errors"]] == [
        ("concurrent_change", linked["id"])]
    assert linked["id"] not in {c["userId"] for c in report["changes"]}
    users = {u["id"]: u for u in (await store.export_document())["users"]}
    assert users[linked["id"]]["displayName"] == "edited in Emply"
    assert users[linked["id"]].get("entraId") is None  # the run's link was not written
    assert store.state is not None and store.state.get("residual") is None
    feed = [e for c in store.change_feed.chunks.values() for e in c.changes()]
    assert [e["userId"] for e in feed] == [c["userId"] for c in report["changes"]]
    assert await store.current_lease() is None


async def test_a_lost_lease_stops_the_run_before_it_applies(
        graph: graph_client.GraphClient, monkeypatch: pytest.MonkeyPatch) -> None:
    store = await _store(emply_state())

    async def taken_over(run_id: str, **_: Any) -> None:
        raise LeaseLost(run_id)

    monkeypatch.setattr(lease, "LEASE_TTL_SECONDS", 0.03)
    monkeypatch.setattr(store, "renew_lease", taken_over)
    real_load = store.load_emply

    async def slow_load(*args: Any, **kwargs: Any) -> LoadedEmply:
        import asyncio

        await asyncio.sleep(0.1)  # the heartbeat renews (and fails) meanwhile
        return await real_load(*args, **kwargs)

    real_scan = store.scan

    async def slow_scan(*args: Any, **kwargs: Any) -> str | None:
        import asyncio

        await asyncio.sleep(0.1)  # the same, for a run that reads into its index
        return await real_scan(*args, **kwargs)

    monkeypatch.setattr(store, "load_emply", slow_load)
    monkeypatch.setattr(store, "scan", slow_scan)
    report = await _run(store, graph)
    assert report["status"] == "failed"
    assert [e["reason"] for e in report["errors"]] == ["lease_lost"]
    assert (await store.export_document())["users"] == [] and store.state is None
