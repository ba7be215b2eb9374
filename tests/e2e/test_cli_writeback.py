"""R9 update and R10 end to end: the CLI, real Azurite, the Graph simulator over HTTP.

The simulator's request counters are the proof: what was PATCHed, and that nothing
was written at all when the options are off.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from tests.e2e import tenants as t

RAY = t.entra_user(1, "Ray Ross")
MEGAN = t.entra_user(2, "Megan Jordan")
RAY_USER = {"id": "u-ray", "username": "ray.ross@contoso.com",
            "email": "ray.ross@contoso.com", "displayName": "Ray Ross", "status": "active",
            "roles": ["employee"], "employeeId": "e-ray", "source": "manual",
            "entraId": None}
RAY_EMPLOYEE = {"id": "e-ray", "email": "ray.ross@contoso.com", "displayName": "Ray Ross",
                "givenName": "Ray", "surname": "Ross", "jobTitle": "Engineer",
                "department": "R&D", "mobilePhone": None, "resignationDate": None,
                "status": "active"}
WRITES = ("PATCH", "POST", "DELETE")
RAY_PATCH = "PATCH /users/{id}"


def cloud_tenant(*users: dict[str, Any]) -> dict[str, Any]:
    people = list(users) or [copy.deepcopy(RAY), copy.deepcopy(MEGAN)]
    return t.tenant(people, {t.G_EMPLOYEE: [p["id"] for p in people], t.G_HR: []})


def state(update: bool = True, **more: Any) -> dict[str, Any]:
    return t.emply_state([dict(RAY_USER)], [dict(RAY_EMPLOYEE)],
                         writeBack={"create": False, "update": update, "delete": False},
                         **more)


def turn_update(world: Any, on: bool) -> None:
    """Change only the setting, as an operator does: export, edit, import --replace."""
    doc = world.export()
    doc["settings"]["writeBack"]["update"] = on
    world.import_state(doc, "--replace")


def writes(world: Any) -> dict[str, int]:
    """Write requests the simulator served, by endpoint ($batch items counted singly)."""
    counts: dict[str, int] = world.sim.requests()["byEndpoint"]
    return {k: n for k, n in counts.items() if k.startswith(WRITES)}


def entra_ray(world: Any) -> dict[str, Any]:
    return next(u for u in world.sim.tenant()["users"] if u["id"] == RAY["id"])


def kinds(report: dict[str, Any]) -> list[str]:
    return [c["kind"] for c in report["changes"]]


def reasons(report: dict[str, Any]) -> list[str]:
    return [e["reason"] for e in report["errors"]]


def test_update_patches_what_differs_once_and_a_second_run_sends_no_patch(
    make_world: Any,
) -> None:
    world = make_world(cloud_tenant())
    world.import_state(state())
    world.sim.reset_requests()

    dry = world.sync("--dry-run")
    assert writes(world) == {}  # a dry run writes nothing, to either side
    planned = [c for c in dry["changes"] if c["kind"] == "entra_update"]
    assert planned == [{
        "kind": "entra_update", "userId": "u-ray", "entraId": RAY["id"],
        "reason": "entra_update", "rule": "R9",
        "before": {"jobTitle": None, "department": None},
        "after": {"jobTitle": "Engineer", "department": "R&D"},
        "message": planned[0]["message"]}]

    first = world.sync()
    assert first["counts"] == {"link_user": 1, "create_user": 1, "entra_update": 1}
    assert [c for c in first["changes"] if c["kind"] == "entra_update"] == planned
    assert (entra_ray(world)["jobTitle"], entra_ray(world)["department"]) == ("Engineer", "R&D")
    assert writes(world) == {"POST /$batch": 1, RAY_PATCH: 1}

    world.sim.reset_requests()
    second = world.sync()
    assert "entra_update" not in second["counts"]
    assert writes(world) == {}  # zero PATCH: Entra already has the profile's values


def test_emply_wins_an_entra_edit_is_overwritten_and_nothing_flows_back(
    make_world: Any,
) -> None:
    world = make_world(cloud_tenant())
    world.import_state(state())
    world.sync()
    before = world.users()["ray.ross@contoso.com"]

    edited = world.sim.tenant()
    ray = next(u for u in edited["users"] if u["id"] == RAY["id"])
    ray.update({"jobTitle": "Chief", "displayName": "Raymond Ross"})
    world.sim.put_tenant(edited)
    report = world.sync()
    (change,) = [c for c in report["changes"] if c["kind"] == "entra_update"]
    assert change["before"] == {"displayName": "Raymond Ross", "jobTitle": "Chief"}
    assert change["after"] == {"displayName": "Ray Ross", "jobTitle": "Engineer"}
    assert (entra_ray(world)["displayName"], entra_ray(world)["jobTitle"]) == (
        "Ray Ross", "Engineer")
    after = world.users()["ray.ross@contoso.com"]
    assert after["displayName"] == before["displayName"] == "Ray Ross"  # R5: never copied
    assert world.export()["employees"][0]["jobTitle"] == "Engineer"

    world.sim.reset_requests()
    assert "entra_update" not in world.sync()["counts"]  # no ping-pong
    assert writes(world) == {}


def test_with_write_back_off_a_run_sends_zero_writes_and_turning_it_off_stops_it(
    make_world: Any,
) -> None:
    world = make_world(cloud_tenant())
    world.import_state(state(update=False))
    world.sim.reset_requests()
    report = world.sync()
    assert "entra_update" not in report["counts"] and writes(world) == {}
    assert entra_ray(world)["jobTitle"] is None

    turn_update(world, True)
    assert world.sync()["counts"] == {"entra_update": 1}
    turn_update(world, False)
    edited = world.sim.tenant()
    next(u for u in edited["users"] if u["id"] == RAY["id"])["jobTitle"] = "Chief"
    world.sim.put_tenant(edited)
    world.sim.reset_requests()
    assert "entra_update" not in world.sync()["counts"]
    assert writes(world) == {} and entra_ray(world)["jobTitle"] == "Chief"


def test_a_hybrid_user_is_never_written_in_a_cloud_tenant(make_world: Any) -> None:
    world = make_world(cloud_tenant(t.entra_user(1, "Ray Ross", onPremisesSyncEnabled=True),
                                    copy.deepcopy(MEGAN)))
    world.import_state(state())
    world.sim.reset_requests()
    report = world.sync()
    assert "entra_update" not in report["counts"]
    (hybrid,) = [e for e in report["errors"] if e["reason"] == "hybrid_user"]
    assert (hybrid["userId"], hybrid["entraId"]) == ("u-ray", RAY["id"])
    assert writes(world) == {}


def test_importing_write_back_for_a_hybrid_tenant_is_refused(make_world: Any) -> None:
    tenant = cloud_tenant()
    tenant["organization"]["onPremisesSyncEnabled"] = True
    world = make_world(tenant)
    path = world.tmp / "emply.json"
    path.write_text(json.dumps(state()))
    code, out, err = world.cli("emply", "import", str(path))
    assert code == 2, out
    assert "hybrid_tenant" in err and "writeBack.update" in err and "nothing was written" in err
    assert world.export()["users"] == []

    world.import_state(state(update=False))  # without write-back it is welcome
    assert world.export()["users"][0]["id"] == "u-ray"


def test_a_tenant_that_turns_hybrid_later_gets_no_write_back_and_the_error_each_run(
    make_world: Any,
) -> None:
    world = make_world(cloud_tenant())
    world.import_state(state())
    world.sync()
    hybrid = world.sim.tenant()
    hybrid["organization"]["onPremisesSyncEnabled"] = True
    next(u for u in hybrid["users"] if u["id"] == RAY["id"])["jobTitle"] = "Chief"
    world.sim.put_tenant(hybrid)
    world.sim.reset_requests()
    for _ in range(2):
        report = world.sync()
        assert "hybrid_tenant" in reasons(report)
        assert "entra_update" not in report["counts"]
    assert writes(world) == {} and entra_ray(world)["jobTitle"] == "Chief"


def test_a_throttled_item_is_retried_after_its_retry_after(make_world: Any) -> None:
    world = make_world(cloud_tenant())
    world.import_state(state())
    world.sim.set_faults("/users/{id}", 429, method="PATCH", times=1, retry_after=1)
    world.sim.reset_requests()
    report = world.sync()
    assert report["counts"]["entra_update"] == 1 and reasons(report) == []
    assert writes(world) == {"POST /$batch": 2, RAY_PATCH: 2}
    assert entra_ray(world)["jobTitle"] == "Engineer"


def test_a_failed_write_is_reported_does_not_stop_emply_and_the_next_run_retries(
    make_world: Any,
) -> None:
    world = make_world(cloud_tenant())
    world.import_state(state())
    world.sim.set_faults("/users/{id}", 503, method="PATCH", times=-1)
    report = world.sync()
    assert report["status"] == "succeeded"
    assert report["counts"] == {"link_user": 1, "create_user": 1}  # Emply side applied
    (failed,) = [e for e in report["errors"] if e["reason"] == "entra_write_failed"]
    assert (failed["userId"], failed["temporary"]) == ("u-ray", True)
    assert entra_ray(world)["jobTitle"] is None

    world.sim.clear_faults()
    again = world.sync()  # nothing changed on either side: it must still plan, not reuse
    assert "reusedPlanOf" not in again
    assert again["counts"] == {"entra_update": 1}
    assert entra_ray(world)["jobTitle"] == "Engineer"


def test_no_write_permission_is_reported_once_not_per_user(make_world: Any) -> None:
    megan_employee = {**RAY_EMPLOYEE, "id": "e-megan", "email": "megan.jordan@contoso.com",
                      "displayName": "Megan Jordan", "givenName": "Megan",
                      "surname": "Jordan"}
    megan_user = {**RAY_USER, "id": "u-megan", "username": "megan.jordan@contoso.com",
                  "email": "megan.jordan@contoso.com", "displayName": "Megan Jordan",
                  "employeeId": "e-megan"}
    world = make_world(cloud_tenant())
    doc = state()
    doc["users"].append(megan_user)
    doc["employees"].append(megan_employee)
    world.import_state(doc)
    world.sim.set_faults("/users/{id}", 403, method="PATCH", times=-1)
    report = world.sync()
    assert reasons(report) == ["graph_write_forbidden"]
    assert "2 write-back request(s)" in report["errors"][0]["message"]
    assert "User.ReadWrite.All" in report["errors"][0]["message"]
    assert "entra_update" not in report["counts"]


def delete_in_emply(world: Any, usernames: set[str], *, delete: bool = True,
                    **settings: Any) -> None:
    """As an operator does: export, mark users deleted, turn writeBack.delete on, import."""
    doc = world.export()
    doc["settings"]["writeBack"]["delete"] = delete
    doc["settings"].update(settings)
    for u in doc["users"]:
        if u["username"] in usernames:
            u["status"] = "deleted"
    world.import_state(doc, "--replace")


def deleted_items(world: Any) -> list[str]:
    body = world.sim.graph("GET", "/directory/deletedItems/microsoft.graph.user").json()
    return [u["id"] for u in body["value"]]


def test_delete_moves_the_entra_user_to_deleted_items_once(make_world: Any) -> None:
    world = make_world(cloud_tenant())
    world.import_state(state(update=False))
    world.sync()
    delete_in_emply(world, {"ray.ross@contoso.com"})
    world.sim.reset_requests()

    dry = world.sync("--dry-run")
    assert writes(world) == {}
    report = world.sync()
    assert report["counts"] == {"entra_delete": 1}
    assert [c for c in report["changes"] if c["kind"] == "entra_delete"] == [
        c for c in dry["changes"] if c["kind"] == "entra_delete"]
    (change,) = report["changes"]
    assert (change["userId"], change["entraId"]) == ("u-ray", RAY["id"])
    assert "deleted users, restorable there for 30 days" in change["message"]
    assert deleted_items(world) == [RAY["id"]]
    assert writes(world) == {"POST /$batch": 1, "DELETE /users/{id}": 1}

    world.sim.reset_requests()
    again = world.sync()
    assert "entra_delete" not in again["counts"] and writes(world) == {}
    assert world.users()["ray.ross@contoso.com"]["status"] == "deleted"  # Emply untouched


def test_delete_off_deletes_nothing(make_world: Any) -> None:
    world = make_world(cloud_tenant())
    world.import_state(state(update=False))
    world.sync()
    delete_in_emply(world, {"ray.ross@contoso.com"}, delete=False)
    world.sim.reset_requests()
    assert "entra_delete" not in world.sync()["counts"]
    assert writes(world) == {} and deleted_items(world) == []


def test_mass_deletions_are_held_until_approved_by_count_and_digest(make_world: Any) -> None:
    people = t.staff(10)
    world = make_world(cloud_tenant(*people))
    world.import_state(t.emply_state(
        deactivationGuard={"maxCount": 50, "maxPercent": 20, "minCount": 3}))
    world.sync()
    gone = {p["userPrincipalName"] for p in people[:4]}
    delete_in_emply(world, gone)
    world.sim.reset_requests()

    held = world.sync()
    assert held["status"] == "needs_approval" and "entra_delete" not in held["counts"]
    assert [c["kind"] for c in held["held"]] == ["entra_delete"] * 4
    (guard,) = [e for e in held["errors"] if e["reason"] == "held_by_guard"]
    approval = guard["message"].split("--approve-deletions ", 1)[1].split()[0]
    assert writes(world) == {} and deleted_items(world) == []
    assert "Held by the guard: 4 Entra deletions" in world.ok("sync", "--dry-run")

    bare = world.sync("--approve-deletions", "4")
    assert bare["status"] == "needs_approval" and "approval_mismatch" in reasons(bare)
    approved = world.sync("--approve-deletions", approval)
    assert approved["status"] == "succeeded"
    assert approved["counts"] == {"entra_delete": 4}
    assert sorted(deleted_items(world)) == sorted(p["id"] for p in people[:4])


async def test_held_deletions_are_approved_over_http_too(make_world: Any) -> None:
    from tests.e2e.test_http import sync_over_http

    people = t.staff(10)
    world = make_world(cloud_tenant(*people))
    world.import_state(t.emply_state(
        deactivationGuard={"maxCount": 50, "maxPercent": 20, "minCount": 3}))
    world.sync()
    delete_in_emply(world, {p["userPrincipalName"] for p in people[:3]})
    held = await sync_over_http(world, {})  # POST (202), the queue worker, GET the run
    assert [c["kind"] for c in held["held"]] == ["entra_delete"] * 3
    (guard,) = [e for e in held["errors"] if e["reason"] == "held_by_guard"]
    approval = guard["message"].split('"approveDeletions": "', 1)[1].split('"')[0]
    report = await sync_over_http(world, {"approveDeletions": approval})
    assert report["status"] == "succeeded" and report["counts"] == {"entra_delete": 3}


def test_a_deactivation_approval_is_unused_when_only_deletions_are_held(
    make_world: Any,
) -> None:
    people = t.staff(10)
    world = make_world(cloud_tenant(*people))
    world.import_state(t.emply_state(
        deactivationGuard={"maxCount": 50, "maxPercent": 20, "minCount": 3}))
    world.sync()
    delete_in_emply(world, {p["userPrincipalName"] for p in people[:3]})
    report = world.sync("--approve-deactivations", "3")
    assert [c["kind"] for c in report["held"]] == ["entra_delete"] * 3
    assert "approval_unused" in reasons(report)
