"""R1: the single-run lease is renewed while a run works, so a long run is never overlapped."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shared import store as store_mod
from shared.app import boundary
from shared.run import lease, pipeline
from tests.e2e import tenants as t


async def test_a_run_longer_than_the_lease_keeps_it(
    make_world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lease, "LEASE_TTL_SECONDS", 1)
    people = t.staff(3)
    # Two sequential Graph rounds at 1.5 s: the run lasts > 3 s, well past the 1 s lease.
    world = make_world(t.tenant(people, {t.G_EMPLOYEE: [p["id"] for p in people], t.G_HR: []}),
                       latency_ms=1500)
    world.import_state(t.emply_state())

    async with boundary.open_deps() as deps:
        run = asyncio.create_task(pipeline.run_sync(deps, trigger="cli"))
        await asyncio.sleep(1.8)  # past the first expiry
        assert not run.done()
        async with store_mod.open_store(connection_string=world.azurite.connection_string) as other:
            with pytest.raises(store_mod.RunInProgress):
                await other.acquire_lease("intruder", "http")
        report = await run
    assert report["status"] == "succeeded"
    async with store_mod.open_store(connection_string=world.azurite.connection_string) as other:
        assert await other.current_lease() is None  # released at the end
