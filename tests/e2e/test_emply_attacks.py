"""Issue 24, finding by finding: the Emply API under attack and contention, the handlers
called as the host calls them against real Azurite and the Graph simulator. Each test
names the finding it holds to (each failed on the code before the input gate, the
uniqueness index and the truthful answers; the lifecycle findings are in
test_notifications.py, the 503's address in test_boundary.py)."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest

from shared import config
from shared.app import boundary
from tests.e2e import tenants as t
from tests.e2e.test_emply_api import body_of, call, user
from tests.e2e.test_http import function
from tests.e2e.test_sync_queue import principal

HUGE = b"9" * 4301
"""More digits than Python converts to an int by default (4,300)."""


def emply_world(make_world: Any, users: int = 2) -> Any:
    world = make_world(t.tenant([], {t.G_EMPLOYEE: [], t.G_HR: []}))
    world.import_state(t.emply_state([user(i) for i in range(1, users + 1)],
                                     [{"id": "e-1", "email": "ray.ross@contoso.com"}]))
    return world


async def seed_calendar(world: Any) -> None:
    doc = world.export()
    doc["calendars"] = [{"userId": "u-1", "id": "cal-2", "name": "Team", "isDefault": False,
                         "enabled": False}]
    world.import_state(doc, "--replace")


# Every write body of the API, with a raw number to put in one of its fields.
WRITES = [
    ("put_user", "PUT", {"id": "u-1"}, b'{"username": "a@contoso.com", "calendarSync": @N@}',
     "calendarSync"),
    ("patch_user", "PATCH", {"id": "u-1"}, b'{"displayName": @N@}', "displayName"),
    ("put_employee", "PUT", {"id": "e-1"}, b'{"email": "e@contoso.com", "status": @N@}',
     "status"),
    ("patch_employee", "PATCH", {"id": "e-1"}, b'{"surname": @N@}', "surname"),
    ("put_settings", "PUT", {}, b'{"tenantId": "t", "defaultRoleId": "employee", '
                                b'"groups": [], "deactivationGuard": {"maxCount": @N@}}',
     "deactivationGuard.maxCount"),
    ("put_roles", "PUT", {}, b'{"roles": [{"id": "r", "name": @N@}]}', "roles[0].name"),
    ("put_outbound_event", "PUT", {"id": "o-1"}, b'{"userId": "u-1", "subject": @N@, '
                                                  b'"start": "2026-12-02T10:00:00Z", '
                                                  b'"end": "2026-12-02T11:00:00Z"}',
     "subject"),
    ("put_user_calendar", "PUT", {"id": "u-1", "cid": "cal-2"}, b'{"enabled": @N@}',
     "enabled"),
    ("import_emply", "PUT", {}, b'{"users": [{"id": "u-9", "username": "u9@c.com", '
                                b'"roles": [@N@]}]}', "users[0].roles[0]"),
]


@pytest.mark.parametrize("number", [HUGE, b"NaN", b"Infinity", b"-Infinity", b"1e999"],
                         ids=["4301 digits", "NaN", "Infinity", "-Infinity", "1e999"])
@pytest.mark.parametrize(("name", "method", "route", "body", "field"), WRITES,
                         ids=[w[0] for w in WRITES])
async def test_no_number_beyond_i_json_reaches_a_write(
        make_world: Any, name: str, method: str, route: dict[str, str], body: bytes,
        field: str, number: bytes) -> None:
    """Finding: a JSON integer of more than 4,300 digits in any write body was a 500;
    NaN/Infinity were accepted, stored and emitted as non-standard JSON."""
    world = emply_world(make_world)
    await seed_calendar(world)
    before = world.ok("emply", "export")
    response = await function(name)(call(method, "/api/x", body.replace(b"@N@", number),
                                         route=route))
    assert response.status_code == 400, response.get_body()
    problem = body_of(response)
    assert problem["field"] == field, problem
    said = " ".join([problem["detail"], *(e["detail"] for e in problem.get("errors", []))])
    assert "number" in said or number.decode().lstrip("-") in said, said
    assert world.ok("emply", "export") == before


def _forged(value: bytes) -> str:
    return base64.urlsafe_b64encode(value).decode().rstrip("=")


# Positions each paged route's cursor held before cursors were sealed: a lone surrogate
# where the route puts a table key into its query (a UnicodeEncodeError), a real position
# unsealed (anyone could page from anywhere), and nesting as deep as 2,000 characters
# allow (a RecursionError on a host whose stack is deeper than this test's).
_INNER = {"list_users": b'["user-00", "%s"]', "list_employees": b'["employee-00", "%s"]',
          "export_emply": b'["users", "%s"]', "list_changes": b'["%s", 0]'}


def forged_cursors(name: str) -> dict[str, str]:
    inner = _INNER[name]
    lone = inner % b"\\udfff"
    if name == "export_emply":  # its cursor holds the users' cursor
        lone = inner % _forged(_INNER["list_users"] % b"\\udfff").encode()
    return {"lone surrogate": _forged(lone), "a real position, unsealed": _forged(
        inner % b"" if name != "export_emply" else b'["users", null]'),
        "deep": _forged(b"[" * 740 + b"]" * 740), "huge number": _forged(b"[" + HUGE + b"]")}


PAGED = [(name, param, kind) for name, param in (
    ("list_users", "next"), ("list_employees", "next"), ("export_emply", "next"),
    ("list_changes", "after")) for kind in forged_cursors(name)]


@pytest.mark.parametrize(("name", "param", "kind"), PAGED,
                         ids=[f"{n}-{k}" for n, _p, k in PAGED])
async def test_a_forged_cursor_is_a_400_naming_it(make_world: Any, name: str, param: str,
                                                 kind: str) -> None:
    """Finding: a cursor decoding to deeply nested JSON was a RecursionError, to a lone
    surrogate a UnicodeEncodeError (500s on every paged route)."""
    emply_world(make_world)
    params = {param: forged_cursors(name)[kind], "pageSize": "5"}
    response = await function(name)(call("GET", "/api/x", params=params))
    assert response.status_code == 400 and body_of(response)["field"] == param


async def test_handed_out_cursors_page_through_and_cannot_be_altered(
        make_world: Any) -> None:
    emply_world(make_world, users=7)
    seen, query = [], {"pageSize": "3"}
    while True:
        page = body_of(await function("list_users")(call("GET", "/api/users", params=query)))
        seen += [item["id"] for item in page["items"]]
        if page["next"] is None:
            break
        query = dict(p.split("=", 1) for p in page["next"].split("?", 1)[1].split("&"))
        cursor = query["next"]
        altered = cursor[:-1] + ("A" if cursor[-1] != "A" else "B")
        bad = await function("list_users")(call("GET", "/api/users",
                                                params={**query, "next": altered}))
        assert bad.status_code == 400 and body_of(bad)["field"] == "next"
    assert sorted(seen) == [f"u-{i}" for i in range(1, 8)]


LONE = b'"u-\\udfff"'


@pytest.mark.parametrize("where", ["users[0].id", "users[0].username", "roles[0].id"])
async def test_a_lone_surrogate_in_a_document_is_a_400_over_http_and_exit_2_in_the_cli(
        make_world: Any, where: str) -> None:
    """Finding: a lone-surrogate escape as an entity id in PUT /api/emply was a 500; the
    same file through `emply-sync emply import` printed a traceback and exited 1."""
    world = emply_world(make_world)
    before = world.ok("emply", "export")
    section, field = where.split("[0].")
    doc = t.emply_state([user(5)])
    doc[section][0][field] = "PLACEHOLDER"
    raw = json.dumps(doc).encode().replace(b'"PLACEHOLDER"', LONE)
    response = await function("import_emply")(call("PUT", "/api/emply", raw))
    assert response.status_code == 400 and body_of(response)["field"] == where
    path = world.tmp / "lone.json"
    path.write_bytes(raw)
    code, out, err = world.cli("emply", "import", str(path))
    assert code == 2 and out == "" and "Traceback" not in err
    assert where in err and "lone surrogate" in err
    assert world.ok("emply", "export") == before


@pytest.mark.parametrize(("name", "route"), [
    ("get_user", {"id": "u-\udfff"}), ("put_user", {"id": "u-\udfff"}),
    ("patch_user", {"id": "u-\udfff"}), ("get_employee", {"id": "e-\udfff"}),
    ("put_user_calendar", {"id": "u-1", "cid": "c\udfff"}),
    ("get_outbound_event", {"id": "o\udfff"}), ("explain_user", {"user": "u\udfff"}),
    ("get_user", {"id": "u\u200b-1"})])
async def test_route_values_with_lone_surrogates_or_invisible_characters_are_400(
        make_world: Any, name: str, route: dict[str, str]) -> None:
    """Finding: a lone surrogate in a route id was a 500."""
    emply_world(make_world)
    response = await function(name)(call("PUT", "/api/x", {"username": "x@contoso.com"},
                                         route=route))
    assert response.status_code == 400
    assert body_of(response)["field"] == next(iter(route.keys() - {"id"}), "id") \
        if name == "put_user_calendar" else body_of(response)["field"] in route


async def test_a_validation_token_with_a_lone_surrogate_is_a_400() -> None:
    """Finding: the handshake's `validationToken` with a lone surrogate was a 500."""
    response = await function("graph_notifications")(call(
        "POST", "/api/graph/notifications", params={"validationToken": "tok\udfff"}))
    assert response.status_code == 400 and body_of(response)["field"] == "validationToken"


async def test_concurrent_puts_of_different_users_cannot_share_a_username_or_entra_id(
        make_world: Any) -> None:
    """Finding: concurrent PUT /api/users/{id} for different ids skipped the uniqueness
    checks: several users stored with one username or one entraId, and export then
    import --replace refused."""
    world = emply_world(make_world, users=1)
    # Each clash has ids of its own: had the winner of the first already existed, its PUT
    # would rightly answer 200 instead of 201.
    for first, clash in ((10, {"username": "Same@contoso.com"}),
                         (20, {"entraId": "ENTRA-SAME"})):
        bodies = [{**user(first + i), **clash, **({} if "username" in clash else
                                               {"username": f"x{i}@contoso.com"})}
                  for i in range(6)]
        answers = await asyncio.gather(*(
            function("put_user")(call("PUT", "/api/users/x", body, route={"id": body["id"]}))
            for body in bodies))
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [201, 400, 400, 400, 400, 400], statuses
        field = next(iter(clash))
        assert {body_of(a)["field"] for a in answers if a.status_code == 400} == {field}
        holders = [u["id"] for u in world.export()["users"]
                   if (u.get(field) or "").casefold() == clash[field].casefold()]
        assert len(holders) == 1
        world.import_state(world.export(), "--replace")  # the export is a valid document


async def test_of_concurrent_puts_creating_one_id_exactly_one_says_created(
        make_world: Any) -> None:
    """Finding: four concurrent PUTs of one new id all answered 201 "created"."""
    world = emply_world(make_world, users=1)
    answers = await asyncio.gather(*(
        function("put_user")(call("PUT", "/api/users/u-new",
                                  user(99, id="u-new", displayName=f"take {i}"),
                                  route={"id": "u-new"})) for i in range(4)))
    assert sorted(a.status_code for a in answers) == [200, 200, 200, 201]
    stored = {u["id"]: u for u in world.export()["users"]}["u-new"]
    assert stored["displayName"] in {f"take {i}" for i in range(4)}


async def test_a_patch_answered_under_contention_tells_the_truth(make_world: Any) -> None:
    """Finding: under contention a PATCH answered 503 ("could not update the Emply
    version marker after 10 attempts") had in fact been written. Now contention on the
    marker fails no write, and whatever the answer, it is the truth."""
    world = emply_world(make_world, users=30)
    answers = await asyncio.gather(*(
        function("patch_user")(call("PATCH", "/api/users/x", {"displayName": f"P{i}"},
                                    route={"id": f"u-{i}"})) for i in range(1, 31)))
    stored = {u["id"]: u["displayName"] for u in world.export()["users"]}
    for i, answer in enumerate(answers, start=1):
        written = stored[f"u-{i}"] == f"P{i}"
        assert (answer.status_code == 200) == written, (answer.status_code, written)
    assert all(a.status_code == 200 for a in answers)


@pytest.mark.parametrize(("field", "value"), [
    ("username", "zz\u200b@contoso.com"), ("email", "zz\u200b@contoso.com"),
    ("username", "zz\u202e@contoso.com"), ("email", "zz\u2060@contoso.com"),
    ("username", "zz\u00a0@contoso.com")])
async def test_invisible_characters_are_refused_in_usernames_and_e_mails(
        make_world: Any, field: str, value: str) -> None:
    """Finding: zero-width and other invisible characters were accepted in usernames and
    e-mails: two "different" users zz@ and zz\\u200b@, and with write-back create on a
    second Entra account with an invisible character in its UPN."""
    world = emply_world(make_world, users=1)
    before = world.ok("emply", "export")
    body = {**user(2), field: value}
    response = await function("put_user")(call("PUT", "/api/users/u-2", body,
                                                route={"id": "u-2"}))
    assert response.status_code == 400 and body_of(response)["field"] == field
    employee = await function("put_employee")(call("PUT", "/api/employees/e-2",
                                                   {"email": value}, route={"id": "e-2"}))
    assert employee.status_code == 400 and body_of(employee)["field"] == "email"
    assert world.ok("emply", "export") == before


async def test_a_name_given_twice_in_the_document_is_a_400(make_world: Any) -> None:
    """Finding: PUT /api/emply accepted a key given twice (last wins) though the docs say
    400."""
    world = emply_world(make_world)
    before = world.ok("emply", "export")
    raw = json.dumps(t.emply_state([user(7)])).encode().replace(
        b'"users":', b'"users": [], "users":', 1)
    response = await function("import_emply")(call("PUT", "/api/emply", raw))
    assert response.status_code == 400 and body_of(response)["field"] == "users"
    assert world.ok("emply", "export") == before


async def test_the_role_limit_is_one_for_put_roles_and_every_import(make_world: Any) -> None:
    """Finding: an import of 10,000 roles succeeded while PUT /api/roles capped the list
    at 100."""
    world = emply_world(make_world)
    before = world.ok("emply", "export")
    many = [{"id": f"r-{i}", "name": f"Role {i}"} for i in range(10_000)]
    put = await function("put_roles")(call("PUT", "/api/roles", {"roles": many}))
    doc = {**t.emply_state(), "roles": [*t.ROLES, *many]}
    imported = await function("import_emply")(call("PUT", "/api/emply", doc))
    path = world.tmp / "roles.json"
    path.write_text(json.dumps(doc))
    code, _out, err = world.cli("emply", "import", str(path))
    assert put.status_code == imported.status_code == 400 and code == 2
    assert body_of(put)["field"] == body_of(imported)["field"] == "roles"
    assert "at most 100" in body_of(put)["errors"][0]["detail"]
    assert "at most 100" in body_of(imported)["errors"][0]["detail"] and "at most 100" in err
    # A plain import adding roles beside the stored ones counts them all.
    plus = [{"id": f"extra-{i}", "name": "x"} for i in range(100 - len(t.ROLES) + 1)]
    path.write_text(json.dumps({"roles": plus}))
    assert world.cli("emply", "import", str(path))[0] == 2
    assert world.ok("emply", "export") == before


async def test_every_route_makes_the_app_role_check(make_world: Any,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding: GET /api/openapi.json skipped the app-role check every other route makes
    when EMPLY_SYNC_REQUIRED_ROLE is set."""
    emply_world(make_world)
    monkeypatch.setenv(config.REQUIRED_ROLE, "EmplySync.Call")
    for name in ("openapi_document", "list_users", "list_changes", "export_emply"):
        refused = await function(name)(call("GET", "/api/x"))
        assert refused.status_code == 403, name
        allowed = await function(name)(call("GET", "/api/x", headers={
            "x-ms-client-principal": principal("EmplySync.Call")}))
        assert allowed.status_code == 200, name


async def test_nothing_non_standard_is_ever_emitted(make_world: Any) -> None:
    """What is stored and exported is standard JSON (no NaN or Infinity): the gate keeps
    them out, and every answer is serialised strictly."""
    world = emply_world(make_world)
    exported = await function("export_emply")(call("GET", "/api/emply"))
    json.loads(exported.get_body(), parse_constant=lambda c: pytest.fail(c))
    assert "NaN" not in world.ok("emply", "export")
    async with boundary.open_deps() as deps:
        assert await deps.store.cursor_key() == await deps.store.cursor_key()
