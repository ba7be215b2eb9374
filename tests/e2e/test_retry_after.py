"""Retry-After on the answers a client should retry: a 409 while a run is queued or
running, a temporary 503; none on a permanent refusal."""

from __future__ import annotations

import json
from typing import Any

from shared.store import open_store
from tests.e2e import tenants as t
from tests.e2e.test_emply_api import call
from tests.e2e.test_http import function, world_with_staff
from webhook_http.answers import BUSY_RETRY_AFTER_SECONDS, UNAVAILABLE_RETRY_AFTER_SECONDS


async def test_409_while_a_run_is_queued_or_running_says_when_to_retry(
        make_world: Any) -> None:
    world = world_with_staff(make_world)
    first = await function("manual_sync")(call("POST", "/api/sync", {}))
    assert first.status_code == 202
    queued = await function("manual_sync")(call("POST", "/api/sync", {"dryRun": True}))
    assert queued.status_code == 409
    assert queued.headers["Retry-After"] == str(BUSY_RETRY_AFTER_SECONDS)
    assert json.loads(queued.get_body())["runId"] == json.loads(first.get_body())["runId"]
    # A run holding the lease (the timer's, say): an import is refused the same way.
    async with open_store(connection_string=world.azurite.connection_string) as store:
        await store.acquire_lease("20261202T040000Z-0000beef", "timer")
        try:
            response = await function("import_emply")(call("PUT", "/api/emply",
                                                           t.emply_state()))
        finally:
            await store.release_lease("20261202T040000Z-0000beef")
    assert response.status_code == 409
    assert response.headers["Retry-After"] == str(BUSY_RETRY_AFTER_SECONDS)
    assert json.loads(response.get_body())["runId"] == "20261202T040000Z-0000beef"


async def test_a_temporary_503_says_when_to_retry_a_permanent_refusal_does_not(
        make_world: Any) -> None:
    world = world_with_staff(make_world)
    world.sync()
    world.sim.set_faults("/users/delta", 503, times=-1)
    response = await function("explain_user")(
        call("GET", "/x", route={"user": "person1.staff@contoso.com"}))
    assert response.status_code == 503
    assert json.loads(response.get_body())["temporary"] is True
    assert response.headers["Retry-After"] == str(UNAVAILABLE_RETRY_AFTER_SECONDS)
    world.sim.set_faults("/organization", 503, times=-1)
    probe = await function("health")(call("GET", "/api/health"))
    assert probe.status_code == 503
    assert probe.headers["Retry-After"] == str(UNAVAILABLE_RETRY_AFTER_SECONDS)
    bad = await function("manual_sync")(call("POST", "/api/sync", {"dryRun": 1}))
    assert bad.status_code == 400 and "Retry-After" not in bad.headers
