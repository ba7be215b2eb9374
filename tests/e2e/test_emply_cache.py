"""Runs served from the Emply index still see every change made on the Emply side."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from shared import store as store_mod
from tests.e2e import tenants as t


def _index_generation(conn: str) -> Any:
    async def load() -> Any:
        async with store_mod.open_store(connection_string=conn) as store:
            return (await store.load_sync_state() or {}).get("index")

    return asyncio.run(load())


def test_a_change_in_emply_between_runs_is_never_missed(make_world: Any) -> None:
    people = t.staff(6)
    world = make_world(t.tenant(people, {t.G_EMPLOYEE: [p["id"] for p in people], t.G_HR: []}))
    world.import_state(t.emply_state())
    assert world.sync()["counts"] == {"create_user": 6}
    generation = _index_generation(world.azurite.connection_string)

    # Nothing changed: no changes, and the index is not rewritten.
    assert world.sync()["counts"] == {}
    assert _index_generation(world.azurite.connection_string) == generation

    # An operator deactivates a synced user in Emply (an import): the next run must
    # see it (never reactivate a user Emply deactivated) and plan nothing for it.
    exported = world.export()
    edited = copy.deepcopy(exported)
    victim = next(u for u in edited["users"] if u["username"] == "person2.staff@contoso.com")
    victim["status"] = "deactivated"
    victim["deactivatedBy"] = "emply"
    world.import_state(edited)
    assert world.sync()["counts"] == {}
    assert world.users()["person2.staff@contoso.com"]["status"] == "deactivated"

    # The operator removes a synced user's role in Emply: the sync puts it back,
    # which it can only do if it read the edit.
    edited = copy.deepcopy(world.export())
    target = next(u for u in edited["users"] if u["username"] == "person4.staff@contoso.com")
    target["roles"] = []
    world.import_state(edited)
    report = world.sync()
    assert [(c["kind"], c["userId"]) for c in report["changes"]] == [
        ("set_roles", target["id"])]
    assert world.users()["person4.staff@contoso.com"]["roles"]


def test_history_survives_writes_planned_from_the_cached_copy(make_world: Any) -> None:
    people = t.staff(10)  # one leaver stays under the guard (20%)
    tenant = t.tenant(people, {t.G_EMPLOYEE: [p["id"] for p in people], t.G_HR: []})
    world = make_world(tenant)
    world.import_state(t.emply_state())
    world.sync()
    world.sync()  # served from the cache from here on
    changed = copy.deepcopy(tenant)
    leaver = people[1]["id"]
    changed["groups"][0]["members"].remove(leaver)
    world.sim.put_tenant(changed)
    assert world.sync()["counts"] == {"deactivate_user": 1}
    user = world.users()["person1.staff@contoso.com"]
    assert [h["kind"] for h in user["history"]] == ["create_user", "deactivate_user"]
    assert user["lastChange"]["kind"] == "deactivate_user"
