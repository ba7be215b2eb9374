"""GET/PUT /api/roles over the handlers, against real Azurite: the import's validation,
one ETag for the list with If-Match, and no removal of a role still referenced."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e import tenants as t
from tests.e2e.test_emply_api import body_of, call, user
from tests.e2e.test_http import function


async def get_roles() -> tuple[list[dict[str, Any]], str]:
    response = await function("list_roles")(call("GET", "/api/roles"))
    assert response.status_code == 200
    return body_of(response)["roles"], response.headers["ETag"]


async def put_roles(body: Any, etag: str | None = None) -> Any:
    headers = {"If-Match": etag} if etag is not None else {}
    return await function("put_roles")(call("PUT", "/api/roles", body, headers=headers))


@pytest.fixture
def world(make_world: Any) -> Any:
    world = make_world(t.tenant([], {t.G_EMPLOYEE: [], t.G_HR: []}))
    world.import_state(t.emply_state([user(1, roles=["employee", "manager"]),
                                      user(2, roles=["employee"])]))
    return world


async def test_put_roles_adds_renames_and_removes_with_if_match(world: Any) -> None:
    roles, etag = await get_roles()
    assert [r["id"] for r in roles] == [r["id"] for r in t.ROLES]
    wanted = [r for r in roles if r["id"] != "new_employee"]
    wanted[0] = {**wanted[0], "name": "Admins"}
    wanted.append({"id": "contractor", "name": "Contractor"})
    put = await put_roles({"roles": wanted}, etag)
    assert put.status_code == 200, put.get_body()
    new_etag = put.headers["ETag"]
    assert new_etag != etag
    after, listed = await get_roles()
    assert listed == new_etag
    assert sorted(r["id"] for r in after) == sorted(r["id"] for r in wanted)
    assert {r["id"]: r["name"] for r in after}["administrator"] == "Admins"
    assert world.export()["roles"] == after
    # The old ETag is stale now: 412, nothing written.
    stale = await put_roles({"roles": roles}, etag)
    assert stale.status_code == 412 and body_of(stale)["field"] == "If-Match"
    assert (await get_roles())[0] == after


@pytest.mark.parametrize(("removed", "says"), [
    ("manager", "held by 1 user(s) (\"u-1\")"),
    ("employee", "settings.defaultRoleId"),
    ("hr", "settings.groups[1].roleId"),
])
async def test_a_role_still_referenced_is_not_removed(world: Any, removed: str,
                                                      says: str) -> None:
    before = world.ok("emply", "export")
    roles, etag = await get_roles()
    response = await put_roles({"roles": [r for r in roles if r["id"] != removed]}, etag)
    assert response.status_code == 400
    problem = body_of(response)
    assert problem["field"] == "roles"
    assert any(f'"{removed}"' in e["detail"] and says in e["detail"]
               for e in problem["errors"]), problem
    assert world.ok("emply", "export") == before


@pytest.mark.parametrize(("body", "field"), [
    ([], "body"),
    ({"roles": [{"id": "x", "nmae": "typo"}]}, 'roles[0] (id "x").nmae'),
    ({"roles": [{"id": "x"}, {"id": "x"}]}, 'roles[1] (id "x").id'),
    ({"roles": [{"name": "no id"}]}, "roles[0].id"),
    ({"roles": "all"}, "roles"),
    ({}, "roles"),
    ({"roles": [], "extra": 1}, "extra"),
])
async def test_a_bad_body_names_the_field_and_changes_nothing(world: Any, body: Any,
                                                              field: str) -> None:
    before = world.ok("emply", "export")
    response = await put_roles(body)
    assert response.status_code == 400, response.get_body()
    assert body_of(response)["field"] == field
    assert world.ok("emply", "export") == before

