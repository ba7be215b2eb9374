"""R2–R8, R12, R18 through `emply-sync` with tenant changes made via PUT /_sim/tenant."""

from __future__ import annotations

import copy
import json
from typing import Any

from tests.e2e import tenants as t


def staff_world(make_world: Any, n: int = 10, **settings: Any) -> tuple[Any, dict[str, Any]]:
    people = t.staff(n)
    tenant = t.tenant(people, {t.G_EMPLOYEE: [p["id"] for p in people], t.G_HR: []})
    world = make_world(tenant)
    world.import_state(t.emply_state(**settings))
    assert world.sync()["counts"] == {"create_user": n}
    return world, tenant


def test_guard_holds_60_percent_and_an_approved_run_applies_exactly_those(
    make_world: Any,
) -> None:
    world, tenant = staff_world(
        make_world, deactivationGuard={"maxCount": 50, "maxPercent": 20, "minCount": 5})
    changed = copy.deepcopy(tenant)
    changed["groups"][0]["members"] = changed["groups"][0]["members"][:4]
    world.sim.put_tenant(changed)

    held = world.sync()
    assert held["status"] == "needs_approval"
    assert len(held["held"]) == 6 and held["counts"] == {}
    assert all(u["status"] == "active" for u in world.users().values())
    human = world.ok("sync", "--dry-run")
    assert "emply-sync sync --approve-deactivations 6" in human

    wrong = world.sync("--approve-deactivations", "5")
    assert wrong["status"] == "needs_approval"
    assert "approval_mismatch" in [e["reason"] for e in wrong["errors"]]

    approved = world.sync("--approve-deactivations", "6")
    assert approved["status"] == "succeeded"
    assert {c["userId"] for c in approved["changes"]} == {c["userId"] for c in held["held"]}
    assert sum(u["status"] == "deactivated" for u in world.users().values()) == 6


def test_reasons_reactivation_and_explanations(make_world: Any) -> None:
    world, tenant = staff_world(make_world, n=20, allowedDomains=["contoso.com"])
    changed = copy.deepcopy(tenant)
    users = changed["users"]
    members = changed["groups"][0]["members"]
    members.remove(users[0]["id"])                                    # removed_from_groups
    users[1]["accountEnabled"] = False                                # disabled_in_entra
    users[2]["userPrincipalName"] = "person2.staff@fabrikam.com"      # domain_changed
    deleted = users.pop(3)                                            # deleted_in_entra
    members.remove(deleted["id"])
    users[3]["displayName"] = "Renamed Person"                        # R5: nothing happens
    world.sim.put_tenant(changed)

    report = world.sync()
    got = {c["entraId"]: c["reason"] for c in report["changes"]}
    assert got == {
        tenant["users"][0]["id"]: "removed_from_groups",
        tenant["users"][1]["id"]: "disabled_in_entra",
        tenant["users"][2]["id"]: "domain_changed",
        deleted["id"]: "deleted_in_entra",
    }

    why = world.ok("explain", "person1.staff@contoso.com")
    assert "deactivated by the sync, reason disabled_in_entra" in why
    assert "Why are users in Emply being deactivated?" in why
    explained = json.loads(world.ok("explain", "person0.staff@contoso.com", "--json"))
    assert explained["lastChange"]["reason"] == "removed_from_groups"
    assert explained["user"]["deactivatedBy"] == "sync"

    back = copy.deepcopy(changed)
    back["groups"][0]["members"].append(tenant["users"][0]["id"])
    world.sim.put_tenant(back)
    report = world.sync()
    assert [(c["kind"], c["entraId"]) for c in report["changes"]] == [
        ("reactivate_user", tenant["users"][0]["id"])
    ]


def test_user_deactivated_in_emply_is_never_reactivated(make_world: Any) -> None:
    world, _ = staff_world(make_world)
    state = world.export()
    state["users"][0]["status"] = "deactivated"
    state["users"][0]["deactivatedBy"] = "emply"
    world.import_state(state, "--replace")
    assert world.sync()["counts"] == {}


def test_deleted_entra_user_with_employee_profile_is_still_an_active_employee(
    make_world: Any,
) -> None:
    people = t.staff(10)
    tenant = t.tenant(people, {t.G_EMPLOYEE: [p["id"] for p in people]})
    world = make_world(tenant)
    state = t.emply_state(
        users=[{"id": "u-p0", "username": "person0.staff@contoso.com",
                "email": "person0.staff@contoso.com", "employeeId": "e-p0"}],
        employees=[{"id": "e-p0", "email": "person0.staff@contoso.com"}],
    )
    world.import_state(state)
    world.sync()
    gone = copy.deepcopy(tenant)
    gone["users"] = gone["users"][1:]
    gone["groups"][0]["members"] = gone["groups"][0]["members"][1:]
    world.sim.put_tenant(gone)
    report = world.sync()
    assert [(c["userId"], c["reason"]) for c in report["changes"]] == [
        ("u-p0", "deleted_in_entra")
    ]
    assert world.export()["employees"][0]["status"] == "active"
    why = world.ok("explain", "u-p0")
    assert "employee e-p0 is Active: no resignation date" in why
    assert "still exists under 'Active'" in why


def test_employee_without_account_is_not_connected_and_explained(make_world: Any) -> None:
    people = t.staff(2)
    world = make_world(t.tenant(people, {t.G_EMPLOYEE: [p["id"] for p in people], t.G_HR: []}))
    world.import_state(t.emply_state(
        employees=[{"id": "e-1", "email": "Person1.Staff@contoso.com"}]))
    report = world.sync()
    assert report["counts"] == {"create_user": 1}
    assert [e["reason"] for e in report["errors"]] == ["employee_without_account"]
    why = world.ok("explain", "person1.staff@contoso.com")
    assert "not linked: employee exists without a user account" in why
    assert "you must create an account for the employee first" in why


def test_employee_status_follows_resignation_dates(make_world: Any) -> None:
    world = make_world(t.tenant([], {t.G_EMPLOYEE: []}))
    world.import_state(t.emply_state(employees=[
        {"id": "e-future", "email": "f@contoso.com", "resignationDate": "2999-01-01"},
        {"id": "e-past", "email": "p@contoso.com", "resignationDate": "2001-01-01"},
    ]))
    report = world.sync()
    assert {c["employeeId"]: c["after"]["status"] for c in report["changes"]} == {
        "e-future": "pending", "e-past": "archived"
    }
    statuses = {e["id"]: e["status"] for e in world.export()["employees"]}
    assert statuses == {"e-future": "pending", "e-past": "archived"}


def test_deleted_configured_group_is_held_by_the_guard(make_world: Any) -> None:
    world, tenant = staff_world(make_world)
    changed = copy.deepcopy(tenant)
    changed["groups"] = [g for g in changed["groups"] if g["id"] != t.G_EMPLOYEE]
    world.sim.put_tenant(changed)
    report = world.sync()
    assert report["status"] == "needs_approval"
    assert {c["reason"] for c in report["held"]} == {"group_removed"}


def test_tenant_change_is_held_by_the_guard(make_world: Any) -> None:
    world, tenant = staff_world(make_world)
    other = copy.deepcopy(tenant)
    other["organization"]["id"] = "7e4f2b63-8d2f-4c9b-8e3f-1a5d6c7b8f92"
    other["users"], other["groups"] = [], [{"id": t.G_EMPLOYEE, "displayName": "Employee",
                                            "members": []}]
    world.sim.put_tenant(other)
    settings = world.export()["settings"]
    settings["tenantId"] = other["organization"]["id"]
    world.import_state({"settings": settings})
    report = world.sync()
    assert report["entraRead"]["reason"] == "tenant_changed"
    assert report["status"] == "needs_approval"
    assert {c["reason"] for c in report["held"]} == {"tenant_changed"}
