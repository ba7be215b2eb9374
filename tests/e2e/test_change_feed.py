"""The change feed over HTTP (`GET /api/changes`) and the whole loop Emply drives:
PUT /api/emply → POST /api/sync (202) → the queue worker runs it → GET the run's final
report → GET /api/changes lists exactly the report's changes. The handlers are called as
the host calls them, against real Azurite and the Graph simulator."""

from __future__ import annotations

import json
from typing import Any

from shared.app import changes as change_feed_api
from shared.app import cursors
from shared.store import open_store
from tests.e2e import tenants as t
from tests.e2e.test_emply_api import body_of, call
from tests.e2e.test_http import deliver_next, function, get_run

FEED_FIELDS = ("kind", "userId", "entraId", "reason", "before", "after")


async def changes(after: str | None = None, page_size: int | None = None
                  ) -> tuple[int, dict[str, Any]]:
    params = {}
    if after is not None:
        params["after"] = after
    if page_size is not None:
        params["pageSize"] = str(page_size)
    response = await function("list_changes")(call("GET", "/api/changes", params=params))
    return response.status_code, body_of(response)


async def read_all(after: str | None, page_size: int) -> tuple[list[dict[str, Any]], str]:
    """Follow the feed to its end, as Emply would."""
    items: list[dict[str, Any]] = []
    while True:
        status, page = await changes(after, page_size)
        assert status == 200, page
        assert len(page["items"]) <= page_size
        items += page["items"]
        if not page["items"]:
            assert page["cursor"] == after or after is None
            return items, page["cursor"]
        after = page["cursor"]
        assert page["next"] == (f"/api/changes?after={after}&pageSize={page_size}")


async def test_the_whole_loop_the_feed_lists_exactly_the_reports_changes(
        make_world: Any) -> None:
    people = t.staff(12)
    world = make_world(t.tenant(people, {t.G_EMPLOYEE: [p["id"] for p in people],
                                         t.G_HR: []}))
    # Caught up on an empty feed: an empty page and a cursor that stays the same.
    status, empty = await changes()
    assert status == 200 and empty["items"] == []
    start = empty["cursor"]
    assert (await changes(start))[1]["cursor"] == start

    put = await function("import_emply")(call("PUT", "/api/emply", t.emply_state()))
    assert put.status_code == 200, put.get_body()
    # A dry run records nothing.
    dry = await function("manual_sync")(call("POST", "/api/sync", {"dryRun": True}))
    assert dry.status_code == 202
    assert (await deliver_next(world))["status"] == "succeeded"
    assert (await changes(start))[1]["items"] == []

    posted = await function("manual_sync")(call("POST", "/api/sync", {}))
    assert posted.status_code == 202
    run_id = body_of(posted)["runId"]
    assert (await get_run(run_id))["status"] == "queued"
    report = await deliver_next(world)
    assert report["runId"] == run_id and report["status"] == "succeeded"
    assert report["counts"] == {"create_user": 12}
    items, cursor = await read_all(start, page_size=5)
    assert [{k: i.get(k) for k in FEED_FIELDS} for i in items] == [
        {k: c.get(k) for k in FEED_FIELDS} for c in report["changes"]]
    assert {i["runId"] for i in items} == {run_id}

    # Someone joins in Entra; the next run's changes follow, from the cursor Emply kept.
    joined = t.staff(13)
    world.sim.put_tenant(t.tenant(joined, {t.G_EMPLOYEE: [p["id"] for p in joined],
                                           t.G_HR: []}))
    again = await function("manual_sync")(call("POST", "/api/sync", {}))
    second = await deliver_next(world)
    assert second["runId"] == body_of(again)["runId"] and second["changes"]
    more, _ = await read_all(cursor, page_size=1000)
    assert [(i["kind"], i["userId"], i["runId"]) for i in more] == [
        (c["kind"], c["userId"], second["runId"]) for c in second["changes"]]
    # From the start: both runs, in order.
    everything, _ = await read_all(None, page_size=1000)
    assert [i["runId"] for i in everything] == (
        [run_id] * len(items) + [second["runId"]] * len(more))


async def test_bad_and_expired_cursors_are_problems(make_world: Any) -> None:
    world = make_world(t.tenant([], {t.G_EMPLOYEE: [], t.G_HR: []}))
    # Unsealed positions too: even one naming a real place in the feed is refused.
    for bad in ("nope", "W10", "WyJ4IiwgMF0", "'; DROP", "x" * 2001,
                change_feed_api.encode_cursor("", 0)):
        status, problem = await changes(bad)
        assert status == 400 and problem["field"] == "after", bad
    async with open_store(connection_string=world.azurite.connection_string) as store:
        old = await cursors.seal(store, change_feed_api.encode_cursor(
            "20200101T000000000Z_20200101T000000Z-1a2b3c4d_000000", 3))
    status, gone = await changes(old)
    assert status == 410 and gone["field"] == "after" and gone["reason"] == "cursor_expired"
    assert "GET /api/emply" in gone["detail"]
    status, problem = await changes(page_size=0)
    assert status == 400 and problem["field"] == "pageSize"
    response = await function("list_changes")(call("GET", "/api/changes",
                                                    params={"since": "x"}))
    assert response.status_code == 400 and json.loads(response.get_body())["field"] == "query"
