"""The cached copy of the Emply side: served only while the version marker says it is current."""

from __future__ import annotations

import pytest

from shared.emply.document import validate_document
from shared.store import ConcurrentChangeError, EmplyStore, open_store
from tests.support.azurite import AzuriteProcess

HISTORY = [{"kind": "link_user", "rule": "R3", "reason": "link_user", "message": "m",
            "runId": "r1", "at": "2025-01-01T00:00:00Z"}]


def _doc(n: int = 120) -> dict[str, object]:
    return {
        "settings": {"tenantId": "t1", "groups": [{"groupId": "g1", "roleId": "r1"}],
                     "defaultRoleId": "r1"},
        "roles": [{"id": "r1", "name": "Role"}],
        "users": [{"id": f"u{i:03d}", "username": f"u{i}@c.com", "roles": ["r1"],
                   "history": HISTORY, "lastChange": HISTORY[0]} for i in range(n)],
        "employees": [{"id": "e1", "email": "e1@c.com"}],
    }


def _without_heavy(doc: dict[str, object]) -> dict[str, object]:
    out = dict(doc)
    out["users"] = [{k: v for k, v in u.items() if k not in ("history", "lastChange")}
                    for u in doc["users"]]  # type: ignore[attr-defined]
    return out


async def _cached(store: EmplyStore) -> dict[str, object]:
    await store.import_document(_doc())
    cache = (await store.load_emply()).cache()
    assert cache is not None
    return cache


async def test_unchanged_side_is_served_from_the_cache(store: EmplyStore) -> None:
    cache = await _cached(store)
    full = await store.load_emply()
    served = await store.load_emply(cache)
    assert served.served_from_cache and not full.served_from_cache
    assert served.doc == _without_heavy(full.doc)


async def test_own_writes_keep_the_cache_current(store: EmplyStore) -> None:
    cache = await _cached(store)
    loaded = await store.load_emply(cache)
    doc = loaded.doc
    whole = await store.read_entities("users", ["u005", "missing"], loaded=loaded)
    assert list(whole) == ["u005"] and whole["u005"]["history"] == HISTORY
    changed = {**whole["u005"], "displayName": "renamed"}
    new = validate_document({"users": [{"id": "u-new", "username": "n@c.com"}]})["users"][0]
    await store.write_entities("users", [changed, new], loaded=loaded)
    cache2 = loaded.cache()
    assert cache2 is not None and cache2["version"] != cache["version"]
    assert loaded.version() == cache2["version"] == await store.current_version()
    served = (await store.load_emply(cache2))
    assert served.served_from_cache
    users = {u["id"]: u for u in served.doc["users"]}
    assert users["u005"]["displayName"] == "renamed"
    assert "u-new" in users and len(users) == len(doc["users"]) + 1
    # the same as a real read, heavy fields aside
    assert served.doc == _without_heavy(await store.export_document())


async def test_a_write_by_another_store_forces_a_real_read(
        azurite: AzuriteProcess, store: EmplyStore, prefix: str) -> None:
    cache = await _cached(store)
    async with open_store(connection_string=azurite.connection_string, prefix=prefix) as other:
        theirs = (await other.export_document())["users"]
        await other.write_entities("users", [{**theirs[7], "status": "deactivated",
                                              "deactivatedBy": "emply"}])
    served = await store.load_emply(cache)
    assert not served.served_from_cache
    assert {u["id"]: u for u in served.doc["users"]}["u007"]["status"] == "deactivated"


@pytest.mark.parametrize("replace", [False, True])
async def test_an_import_forces_a_real_read(store: EmplyStore, replace: bool) -> None:
    cache = await _cached(store)
    doc = _doc(3)
    doc["users"][0]["displayName"] = "imported"  # type: ignore[index]
    await store.import_document(doc, replace=replace)
    served = await store.load_emply(cache)
    assert not served.served_from_cache
    assert served.doc["users"][0]["displayName"] == "imported"
    assert len(served.doc["users"]) == (3 if replace else 120)


async def test_a_write_by_another_store_meanwhile_spoils_our_copy(
        azurite: AzuriteProcess, store: EmplyStore, prefix: str) -> None:
    await store.import_document(_doc())
    mine = await store.load_emply()
    async with open_store(connection_string=azurite.connection_string, prefix=prefix) as other:
        theirs = (await other.export_document())["users"]
        await other.write_entities("users", [{**theirs[50], "displayName": "by the operator"}])
    # our own write of other entities succeeds (their ETags are unchanged) ...
    await store.write_entities("users", [{**mine.doc["users"][1], "displayName": "by the sync"}],
                               loaded=mine)
    # ... but our copy does not know the operator's edit: it must not be offered
    assert mine.cache() is None and mine.version() is None


async def test_read_entities_refuses_an_entity_changed_since_the_copy(
        azurite: AzuriteProcess, store: EmplyStore, prefix: str) -> None:
    cache = await _cached(store)
    loaded = await store.load_emply(cache)
    async with open_store(connection_string=azurite.connection_string, prefix=prefix) as other:
        theirs = (await other.export_document())["users"]
        await other.write_entities("users", [{**theirs[9], "displayName": "changed"}])
    with pytest.raises(ConcurrentChangeError, match="u009"):
        await store.read_entities("users", ["u009"], loaded=loaded)
    # without the copy, nothing to compare with: the entity as it is now
    assert (await store.read_entities("users", ["u009"]))["u009"]["displayName"] == "changed"
