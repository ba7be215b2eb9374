"""An on-demand run keeps the Emply index current (`shared.run.served_index`), on the
storage fakes and the Graph simulator in-process (as `test_on_demand`): two on-demand
runs in a row, and an on-demand run then a full run, are both served from the index
(no read of the Emply table) and give the right answer; a write from elsewhere (the
Emply API) after the run, or during it, makes the next run read the table.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from shared.run import emply_index, indexed, indexes
from shared.run import state as sync_state
from tests.service.test_on_demand import BO, CY, DEE, World, _emply, _for, _world
from tests.support.memory_store import MemoryStore


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async for made in _world(_emply()):
        yield made


def _table_reads(store: MemoryStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every read of the whole Emply table from now on: a load not served from a copy,
    or a scan (the indexed run's)."""
    reads: list[str] = []
    real_load, real_scan = store.load_emply, store.scan

    async def load(cache: Any = None, **kwargs: Any) -> Any:
        if cache is None:
            reads.append("load_emply")
        return await real_load(cache, **kwargs)

    async def scan(*args: Any, **kwargs: Any) -> Any:
        reads.append("scan")
        return await real_scan(*args, **kwargs)

    monkeypatch.setattr(store, "load_emply", load)
    monkeypatch.setattr(store, "scan", scan)
    return reads


async def _index_is_current(world: World) -> bool:
    state, _ = await sync_state.load_state(world.store)
    saved = await indexes.load_emply(world.store, state)
    return saved is not None and saved.version == await world.store.current_version()


async def _write_from_elsewhere(store: MemoryStore, user_id: str) -> None:
    """What the Emply API's PUT of a user amounts to at the store: an unguarded write."""
    user = next(u for u in (await store.export_document())["users"] if u["id"] == user_id)
    await store.write_entities("users", [{**user, "displayName": "Written elsewhere"}])


async def test_two_on_demand_runs_in_a_row_read_no_emply_table(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    reads = _table_reads(world.store, monkeypatch)
    hire = await world.one(BO["userPrincipalName"])
    assert hire["user"]["outcome"] == "applied" and await _index_is_current(world)
    leaver = await world.one(CY["mail"])
    assert reads == []  # both served from the index, the second from what the first left
    bo_id, cy_id = f"entra-{BO['id']}", f"entra-{CY['id']}"
    assert _for(hire, bo_id) == [("create_user", "create_user")]
    assert _for(leaver, cy_id) == [("deactivate_user", "removed_from_groups")]
    users = await world.users()
    assert users[bo_id]["entraId"] == BO["id"] and users[bo_id]["status"] == "active"
    assert users[cy_id]["status"] == "deactivated"
    assert await _index_is_current(world)
    # The index is what a read of the whole table gives now, ETags included.
    state, _ = await sync_state.load_state(world.store)
    saved = await indexes.load_emply(world.store, state)
    assert saved is not None
    building = emply_index.Building()
    scanned = building.index(await MemoryStore.scan(world.store, building.take))
    for kind in indexes.ALL_KINDS:
        assert sorted(map(repr, saved.entries(kind))) == sorted(map(repr, scanned.entries(kind)))
    assert saved.users.by_id(cy_id) is not None and saved.users.by_id(bo_id) is not None
    # Apply, then plan again gives nothing, still served from the index.
    again = await world.one(CY["mail"], dry_run=True)
    assert again["changes"] == [] and reads == []


async def test_a_full_run_after_an_on_demand_run_takes_the_indexed_path(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    hire = await world.one(BO["userPrincipalName"])
    assert hire["user"]["outcome"] == "applied"
    reads = _table_reads(world.store, monkeypatch)
    indexed_runs: list[str] = []
    real_run_indexed = indexed.run_indexed

    async def counted(*args: Any, **kwargs: Any) -> None:
        indexed_runs.append("run")
        await real_run_indexed(*args, **kwargs)

    monkeypatch.setattr(indexed, "run_indexed", counted)
    full = await world.full_run()
    assert full["status"] == "succeeded", full["errors"]
    assert indexed_runs == ["run"] and reads == []
    assert _for(full, f"entra-{BO['id']}") == []  # nothing more for that user
    assert sorted(c["userId"] for c in full["changes"] if c["kind"] == "deactivate_user") == [
        f"entra-{CY['id']}", f"entra-{DEE['id']}"]
    assert await _index_is_current(world)


async def test_a_write_from_elsewhere_between_runs_makes_the_next_run_read_the_table(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    await world.one(BO["userPrincipalName"])
    assert await _index_is_current(world)
    await _write_from_elsewhere(world.store, "u-ann")
    reads = _table_reads(world.store, monkeypatch)
    leaver = await world.one(CY["mail"])
    assert reads == ["load_emply"]  # the marker moved past the index: the table is read
    assert _for(leaver, f"entra-{CY['id']}") == [("deactivate_user", "removed_from_groups")]
    assert not await _index_is_current(world)  # not served from it: not made current
    full = await world.full_run()
    assert full["status"] == "succeeded", full["errors"]
    assert reads == ["load_emply", "scan"]
    assert _for(full, f"entra-{BO['id']}") == [] and _for(full, f"entra-{CY['id']}") == []
    assert await _index_is_current(world)


async def test_a_write_from_elsewhere_during_the_run_leaves_the_index_stale(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    state_before = world.store.state
    assert state_before is not None
    real_loaded_from = world.store.loaded_from

    async def then_a_write(*args: Any, **kwargs: Any) -> Any:
        loaded = await real_loaded_from(*args, **kwargs)
        await _write_from_elsewhere(world.store, "u-ann")  # after the run's load
        return loaded

    monkeypatch.setattr(world.store, "loaded_from", then_a_write)
    hire = await world.one(BO["userPrincipalName"])
    assert hire["user"]["outcome"] == "applied"
    monkeypatch.setattr(world.store, "loaded_from", real_loaded_from)
    assert world.store.state is not None
    assert world.store.state["index"] == state_before["index"]
    assert not await _index_is_current(world)
    reads = _table_reads(world.store, monkeypatch)
    again = await world.one(BO["userPrincipalName"], dry_run=True)
    assert reads == ["load_emply"] and again["changes"] == []
    users = await world.users()
    assert users["u-ann"]["displayName"] == "Written elsewhere"
