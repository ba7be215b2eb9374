"""The Emply side over HTTP: the handlers called as the host calls them, against real
Azurite and the Graph simulator (docs/emply-api.md)."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from typing import Any

import azure.functions as func
import pytest

from shared.app import boundary, emply_pages
from tests.e2e import tenants as t
from tests.e2e.test_http import function, world_with_staff


def call(method: str, url: str, body: Any = None, *, route: dict[str, str] | None = None,
         params: dict[str, str] | None = None,
         headers: dict[str, str] | None = None) -> func.HttpRequest:
    raw = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None
                                                else b"")
    return func.HttpRequest(method=method, url=url, body=raw, route_params=route or {},
                            params=params or {}, headers=headers or {})


def body_of(response: func.HttpResponse) -> Any:
    return json.loads(response.get_body())


def user(n: int, **kw: Any) -> dict[str, Any]:
    base = {"id": f"u-{n}", "username": f"user{n}@contoso.com",
            "email": f"user{n}@contoso.com", "displayName": f"User {n}",
            "roles": ["employee"]}
    base.update(kw)
    return base


async def test_put_then_get_emply_matches_the_cli_byte_for_byte(make_world: Any) -> None:
    world = make_world(t.tenant([], {t.G_EMPLOYEE: [], t.G_HR: []}))
    doc = t.emply_state([user(1), user(2, status="deactivated")])
    put = await function("import_emply")(call("PUT", "/api/emply", doc))
    assert put.status_code == 200, put.get_body()
    assert body_of(put)["imported"]["users"] == 2
    exported = await function("export_emply")(call("GET", "/api/emply"))
    assert exported.status_code == 200
    assert exported.get_body() == world.ok("emply", "export").encode()

    # And the other way: the CLI imports what HTTP exported; HTTP exports the same bytes.
    (world.tmp / "http.json").write_bytes(exported.get_body())
    world.ok("emply", "import", str(world.tmp / "http.json"), "--replace")
    again = await function("export_emply")(call("GET", "/api/emply"))
    assert again.get_body() == exported.get_body()

    replaced = await function("import_emply")(
        call("PUT", "/api/emply", t.emply_state([user(3)]), params={"replace": "true"}))
    assert replaced.status_code == 200 and body_of(replaced)["replaced"] is True
    assert [u["id"] for u in world.export()["users"]] == ["u-3"]


@pytest.mark.parametrize(("body", "params", "field", "status"), [
    (b"{not json", {}, "body", 400),
    ({"users": [{"id": "u-9"}]}, {}, 'users[0] (id "u-9").username', 400),
    ({"usres": []}, {}, "usres", 400),
    ({"users": []}, {"replace": "yes"}, "replace", 400),
    ({"users": []}, {"filter": "x"}, "query", 400),
])
async def test_a_refused_document_names_the_field_and_changes_nothing(
        make_world: Any, body: Any, params: dict[str, str], field: str, status: int) -> None:
    world = world_with_staff(make_world)
    before = world.ok("emply", "export")
    response = await function("import_emply")(call("PUT", "/api/emply", body, params=params))
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    assert body_of(response)["field"] == field
    assert world.ok("emply", "export") == before


async def test_put_emply_while_a_run_holds_the_lease_is_409(make_world: Any) -> None:
    world = world_with_staff(make_world)
    before = world.ok("emply", "export")
    async with boundary.open_deps() as deps:
        await deps.store.acquire_lease("run-held", "timer")
        try:
            response = await function("import_emply")(
                call("PUT", "/api/emply", t.emply_state([user(1)])))
        finally:
            await deps.store.release_lease("run-held")
    assert response.status_code == 409
    assert body_of(response)["runId"] == "run-held"
    assert world.ok("emply", "export") == before


async def test_user_etag_if_match_and_412(make_world: Any) -> None:
    world = make_world(t.tenant([], {t.G_EMPLOYEE: [], t.G_HR: []}))
    world.import_state(t.emply_state([user(1)]))
    got = await function("get_user")(call("GET", "/api/users/u-1", route={"id": "u-1"}))
    assert got.status_code == 200 and body_of(got)["username"] == "user1@contoso.com"
    etag = got.headers["ETag"]

    patched = await function("patch_user")(call(
        "PATCH", "/api/users/u-1", {"displayName": "First"}, route={"id": "u-1"},
        headers={"If-Match": etag}))
    assert patched.status_code == 200, patched.get_body()
    assert body_of(patched)["displayName"] == "First"
    assert patched.headers["ETag"] != etag

    # The ETag read first is stale now: the write is refused and nothing changes.
    stale = await function("patch_user")(call(
        "PATCH", "/api/users/u-1", {"displayName": "Second"}, route={"id": "u-1"},
        headers={"If-Match": etag}))
    assert stale.status_code == 412 and body_of(stale)["field"] == "If-Match"
    stale_put = await function("put_user")(call(
        "PUT", "/api/users/u-1", user(1, displayName="Third"), route={"id": "u-1"},
        headers={"If-Match": etag}))
    assert stale_put.status_code == 412
    async with boundary.open_deps() as deps:
        marker = await deps.store.current_version()
    refused = await function("put_user")(call(
        "PUT", "/api/users/u-1", user(1, displayName="Refused"), route={"id": "u-1"},
        headers={"If-Match": etag}))
    assert refused.status_code == 412
    async with boundary.open_deps() as deps:  # a refused write moves nothing
        assert await deps.store.current_version() == marker
    assert world.users()["user1@contoso.com"]["displayName"] == "First"

    replaced = await function("put_user")(call(
        "PUT", "/api/users/u-1", user(1, displayName="Fourth"), route={"id": "u-1"},
        headers={"If-Match": patched.headers["ETag"]}))
    assert replaced.status_code == 200
    created = await function("put_user")(call("PUT", "/api/users/u-2", user(2),
                                              route={"id": "u-2"}))
    assert created.status_code == 201 and created.headers["ETag"]
    assert {u["id"]: u["displayName"] for u in world.export()["users"]} == {
        "u-1": "Fourth", "u-2": "User 2"}
    # If-Match on an entity that does not exist: 412, not a creation.
    ghost = await function("put_user")(call("PUT", "/api/users/u-3", user(3),
                                            route={"id": "u-3"}, headers={"If-Match": "*"}))
    assert ghost.status_code == 412
    missing = await function("get_user")(call("GET", "/api/users/u-3", route={"id": "u-3"}))
    assert missing.status_code == 404


@pytest.mark.parametrize(("method", "body", "field"), [
    ("PUT", {"username": "x@contoso.com", "status": "gone"}, "status"),
    ("PUT", {"username": "x@contoso.com", "roles": ["nope"]}, "roles[0]"),
    ("PUT", {"username": "USER1@contoso.com"}, "username"),
    ("PUT", {"username": "x@contoso.com", "colour": "red"}, "colour"),
    ("PUT", {"id": "u-other", "username": "x@contoso.com"}, "id"),
    ("PUT", [1, 2], "body"),
    ("PUT", b'{"username": "a", "username": "b"}', "username"),  # a name given twice
    ("PUT", b"[" * 100_000, "body"),
    ("PUT", b'{"username": "' + b"x" * (1024 * 1024) + b'"}', "body"),
    ("PATCH", {"email": "not an address"}, "email"),
    ("PATCH", {"employeeId": "e-missing"}, "employeeId"),
    ("PATCH", {"username": None}, "username"),
])
async def test_bad_entity_bodies_are_400_naming_the_field(
        make_world: Any, method: str, body: Any, field: str) -> None:
    world = make_world(t.tenant([], {t.G_EMPLOYEE: [], t.G_HR: []}))
    world.import_state(t.emply_state([user(1)]))
    before = world.ok("emply", "export")
    # A PUT creates u-2 (its username clashing with u-1's is one refusal); a PATCH edits u-1.
    handler, target = ("put_user", "u-2") if method == "PUT" else ("patch_user", "u-1")
    response = await function(handler)(call(method, f"/api/users/{target}", body,
                                            route={"id": target}))
    assert response.status_code in (400, 413), response.get_body()
    assert body_of(response)["field"] == field
    assert world.ok("emply", "export") == before


@pytest.mark.parametrize("entity_id", ["u-1' or '1'='1", "../../emply", "a/b", "x" * 300,
                                       " ", "u-1\r\nInjected: yes"])
async def test_odd_ids_are_refused_or_not_found_never_matched(make_world: Any,
                                                              entity_id: str) -> None:
    world = make_world(t.tenant([], {t.G_EMPLOYEE: [], t.G_HR: []}))
    world.import_state(t.emply_state([user(1)]))
    response = await function("get_user")(call("GET", "/api/users/x", route={"id": entity_id}))
    assert response.status_code in (400, 404)
    if entity_id.strip():  # the id is never echoed back
        assert entity_id not in response.get_body().decode()


async def test_lists_page_with_next_links_and_filter(make_world: Any) -> None:
    world = world_with_staff(make_world)
    world.sync()  # ten users created and linked
    world.import_state(t.emply_state([user(1, status="deactivated"), user(2)]))
    seen: list[str] = []
    params: dict[str, str] | None = {"pageSize": "3"}
    pages = 0
    while params is not None:
        page = await function("list_users")(call("GET", "/api/users", params=params))
        assert page.status_code == 200, page.get_body()
        body = body_of(page)
        assert len(body["items"]) <= 3 and all(item["etag"] for item in body["items"])
        seen += [item["id"] for item in body["items"]]
        pages += 1
        if body["next"] is None:
            params = None
        else:
            query = body["next"].partition("?")[2]
            params = dict(pair.split("=", 1) for pair in query.split("&"))
            params = {k: v.replace("%3D", "=") for k, v in params.items()}
    assert sorted(seen) == sorted(u["id"] for u in world.export()["users"])
    assert len(seen) == 12 and pages >= 4

    async def ids(**query: str) -> set[str]:
        response = await function("list_users")(call("GET", "/api/users", params=query))
        assert response.status_code == 200
        return {item["id"] for item in body_of(response)["items"]}

    assert await ids(status="deactivated") == {"u-1"}
    assert await ids(linked="false") == {"u-1", "u-2"}
    assert len(await ids(linked="true", source="entra")) == 10
    for bad in ({"pageSize": "100000"}, {"pageSize": "-1"}, {"status": "gone"},
                {"linked": "maybe"}, {"next": "garbage"}, {"next": "eyJ4Ijp9"},
                {"$filter": "x"}):
        refused = await function("list_users")(call("GET", "/api/users", params=bad))
        assert refused.status_code == 400, bad
        assert body_of(refused)["field"] in {*bad, "query"}


async def test_settings_and_roles(make_world: Any) -> None:
    world = make_world(t.tenant([], {t.G_EMPLOYEE: [], t.G_HR: []}))
    missing = await function("get_settings")(call("GET", "/api/settings"))
    assert missing.status_code == 404
    world.import_state(t.emply_state())
    got = await function("get_settings")(call("GET", "/api/settings"))
    settings, etag = body_of(got), got.headers["ETag"]
    put = await function("put_settings")(call("PUT", "/api/settings",
                                              {**settings, "photoSync": True},
                                              headers={"If-Match": etag}))
    assert put.status_code == 200 and body_of(put)["photoSync"] is True
    stale = await function("put_settings")(call("PUT", "/api/settings", settings,
                                                headers={"If-Match": etag}))
    assert stale.status_code == 412
    unknown_role = await function("put_settings")(call(
        "PUT", "/api/settings", {**settings, "defaultRoleId": "nope"}))
    assert unknown_role.status_code == 400
    assert body_of(unknown_role)["field"] == "defaultRoleId"
    assert world.export()["settings"]["photoSync"] is True
    roles = await function("list_roles")(call("GET", "/api/roles"))
    assert [r["id"] for r in body_of(roles)["roles"]] == [r["id"] for r in t.ROLES]


async def test_a_patch_during_a_run_is_never_lost(make_world: Any) -> None:
    """The run writes users conditionally on the ETags it read: Emply's write made while
    it runs (after it loaded the Emply side) stays, only that user is skipped (a per-user
    `concurrent_change`), the others are written, and the next run plans that user again.
    The change feed lists what was applied, not the skipped user's change."""
    people = t.staff(4)
    world = make_world(t.tenant(people, {t.G_EMPLOYEE: [p["id"] for p in people],
                                         t.G_HR: []}), latency_ms=300)
    emply_users = [user(i, username=p["userPrincipalName"], email=p["mail"])
                   for i, p in enumerate(people)]
    world.import_state(t.emply_state(emply_users))
    # The run itself, as the queue worker starts it (POST /api/sync only queues it).
    run = asyncio.create_task(boundary.sync(trigger="http"))
    # A first run loads the Emply side, then reads Graph (each request 300 ms): once
    # Graph has been asked, the run holds the ETags it will write with.
    while (await asyncio.to_thread(world.sim.requests))["total"] == 0:
        await asyncio.sleep(0.02)
    patched = await function("patch_user")(call("PATCH", "/api/users/u-0",
                                                {"displayName": "Written by Emply"},
                                                route={"id": "u-0"}))
    assert patched.status_code == 200
    report = await run
    # The run's write of u-0 was conditional on the ETag it loaded: refused, u-0 left out
    # (its transaction sent again without it), the other users linked.
    assert report["status"] == "succeeded"
    assert [(e["reason"], e.get("userId")) for e in report["errors"]] == [
        ("concurrent_change", "u-0")]
    assert "'u-0'" in report["errors"][0]["message"]
    assert sorted(c["userId"] for c in report["changes"]) == ["u-1", "u-2", "u-3"]
    assert report["counts"] == {"link_user": 3}
    mid = world.users()
    assert mid[people[0]["userPrincipalName"]]["displayName"] == "Written by Emply"
    assert mid[people[0]["userPrincipalName"]]["entraId"] is None
    assert all(mid[p["userPrincipalName"]]["entraId"] == p["id"] for p in people[1:])
    feed = body_of(await function("list_changes")(call("GET", "/api/changes")))
    assert sorted(i["userId"] for i in feed["items"]) == ["u-1", "u-2", "u-3"]
    # The next run plans u-0 again from what Emply wrote (no residual hides it): linked,
    # Emply's write kept.
    again = world.sync()
    assert again["status"] == "succeeded" and again.get("reusedPlanOf") is None
    assert [(c["kind"], c["userId"]) for c in again["changes"]] == [("link_user", "u-0")]
    after = world.users()
    assert after[people[0]["userPrincipalName"]]["displayName"] == "Written by Emply"
    assert all(u["entraId"] for u in after.values())


async def test_get_emply_a_page_at_a_time_gives_the_whole_document(
        make_world: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pages put together are the export; above the one-shot bound, the one-shot form
    is a 413 telling to page."""
    world = make_world(t.tenant([], {t.G_EMPLOYEE: [], t.G_HR: []}))
    users = [user(i) for i in range(23)]
    employees = [{"id": f"e-{i}", "email": f"emp{i}@contoso.com"} for i in range(7)]
    world.import_state(t.emply_state(users, employees))
    whole = world.export()
    pages: list[dict[str, Any]] = []
    params: dict[str, str] = {"pageSize": "5"}
    while True:
        response = await function("export_emply")(call("GET", "/api/emply", params=params))
        assert response.status_code == 200, response.get_body()
        page = body_of(response)
        pages.append(page)
        if page["next"] is None:
            break
        query = dict(p.split("=", 1) for p in page["next"].split("?", 1)[1].split("&"))
        params = {k: urllib.parse.unquote(v) for k, v in query.items()}
    assert set(pages[0]) == {"settings", "roles", "next"}
    assert pages[0]["settings"] == whole["settings"] and pages[0]["roles"] == whole["roles"]
    assert all(len(p) == 2 and all(len(v) <= 5 for k, v in p.items() if k != "next")
               for p in pages[1:])
    for section in ("users", "employees", "calendars", "events", "outboundEvents"):
        joined = [item for p in pages[1:] for item in p.get(section, ())]
        assert sorted(joined, key=lambda i: json.dumps(i, sort_keys=True)) == sorted(
            whole[section], key=lambda i: json.dumps(i, sort_keys=True)), section
    assert len([p for p in pages if "users" in p]) == 5  # 23 users, 5 a page

    bad = await function("export_emply")(call("GET", "/api/emply",
                                              params={"next": "bm9wZQ", "pageSize": "5"}))
    assert bad.status_code == 400 and body_of(bad)["field"] == "next"
    monkeypatch.setattr(emply_pages, "ONE_SHOT_MAX", 25)
    too_large = await function("export_emply")(call("GET", "/api/emply"))
    assert too_large.status_code == 413 and body_of(too_large)["field"] == "pageSize"
    assert "pageSize" in body_of(too_large)["detail"]
    monkeypatch.setattr(emply_pages, "ONE_SHOT_MAX", 30)
    assert (await function("export_emply")(call("GET", "/api/emply"))).status_code == 200


async def test_write_back_for_a_hybrid_tenant_is_refused_over_http_as_by_the_import(
        make_world: Any) -> None:
    """R10 at the door, as `emply-sync emply import` does it: PUT /api/emply and PUT
    /api/settings turning write-back on for a hybrid tenant are 400s, nothing written."""
    tenant = t.tenant([], {t.G_EMPLOYEE: [], t.G_HR: []})
    tenant["organization"]["onPremisesSyncEnabled"] = True
    world = make_world(tenant)
    on = {"create": False, "update": True, "delete": False}
    refused = await function("import_emply")(call("PUT", "/api/emply",
                                                  t.emply_state(writeBack=on)))
    assert refused.status_code == 400
    assert body_of(refused)["field"] == "settings.writeBack"
    assert "hybrid_tenant" in body_of(refused)["errors"][0]["detail"]
    assert world.export()["settings"] is None
    ok = await function("import_emply")(call("PUT", "/api/emply", t.emply_state()))
    assert ok.status_code == 200
    got = await function("get_settings")(call("GET", "/api/settings"))
    settings = body_of(got)
    put = await function("put_settings")(call("PUT", "/api/settings",
                                              {**settings, "writeBack": on}))
    assert put.status_code == 400 and body_of(put)["field"] == "writeBack"
    assert world.export()["settings"] == settings
