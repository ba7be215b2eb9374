"""R11 through `emply-sync`: the FAQ's Ray Ross / Megan Jordan example, case by case.

The tenant and Emply state are the FAQ's: groups Employee and HR mapped to roles
Employee and HR; roles Manager and New employee unmapped; Ray and Megan in both
groups with roles Employee, HR, Manager; Ray has an employee profile.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.e2e import tenants as t

RAY = t.entra_user(1, "Ray Ross")
MEGAN = t.entra_user(2, "Megan Jordan")


def faq_tenant(megan_groups: tuple[str, ...] = (t.G_EMPLOYEE, t.G_HR)) -> dict[str, Any]:
    return t.tenant(
        [RAY, MEGAN],
        {g: [RAY["id"]] + ([MEGAN["id"]] if g in megan_groups else [])
         for g in (t.G_EMPLOYEE, t.G_HR)},
    )


def faq_state() -> dict[str, Any]:
    roles = ["employee", "hr", "manager"]
    return t.emply_state(
        users=[
            {"id": "u-ray", "username": "ray.ross@contoso.com", "email": "ray.ross@contoso.com",
             "displayName": "Ray Ross", "roles": roles, "employeeId": "e-ray"},
            {"id": "u-megan", "username": "megan.jordan@contoso.com",
             "email": "megan.jordan@contoso.com", "displayName": "Megan Jordan",
             "roles": roles},
        ],
        employees=[{"id": "e-ray", "email": "ray.ross@contoso.com", "displayName": "Ray Ross"}],
    )


def roles_of(world: Any) -> dict[str, list[str]]:
    return {u["id"]: sorted(u["roles"]) for u in world.export()["users"]}


@pytest.fixture
def faq_world(make_world: Any) -> Any:
    world = make_world(faq_tenant())
    world.import_state(faq_state())
    first = world.sync()
    assert first["counts"] == {"link_user": 2}  # Case 2A and case 1: no role changes
    assert first["skips"] == {"employee_profile_controls_roles": 1}
    assert roles_of(world) == {"u-megan": ["employee", "hr", "manager"],
                               "u-ray": ["employee", "hr", "manager"]}
    return world


def test_case_1_ray_has_an_employee_profile_so_roles_are_not_synced(faq_world: Any) -> None:
    state = faq_world.export()
    for user in state["users"]:
        if user["id"] == "u-ray":
            user["roles"] = ["manager"]
    faq_world.import_state(state, "--replace")
    report = faq_world.sync()
    assert report["counts"] == {}
    assert roles_of(faq_world)["u-ray"] == ["manager"]
    explained = faq_world.ok("explain", "ray.ross@contoso.com")
    assert "roles not synced: the user has an employee profile" in explained


def test_case_2a_roles_match_the_groups_nothing_changes(faq_world: Any) -> None:
    assert faq_world.sync()["counts"] == {}
    assert roles_of(faq_world)["u-megan"] == ["employee", "hr", "manager"]


def test_case_2b_megan_removed_from_hr_keeps_her_roles(faq_world: Any) -> None:
    faq_world.sim.put_tenant(faq_tenant(megan_groups=(t.G_EMPLOYEE,)))
    report = faq_world.sync()
    assert report["counts"] == {}
    assert roles_of(faq_world)["u-megan"] == ["employee", "hr", "manager"]


def test_case_2c_roles_removed_in_emply_are_restored_and_manager_removed(faq_world: Any) -> None:
    state = faq_world.export()
    for user in state["users"]:
        if user["id"] == "u-megan":
            user["roles"] = ["manager"]
    faq_world.import_state(state, "--replace")
    report = faq_world.sync()
    (change,) = report["changes"]
    assert (change["kind"], change["userId"], change["reason"]) == ("set_roles", "u-megan",
                                                                     "case_2C")
    assert change["before"] == {"roles": ["manager"]}
    assert roles_of(faq_world)["u-megan"] == ["employee", "hr"]
    assert faq_world.sync()["counts"] == {}


def test_case_2d_mapping_employee_to_new_employee(faq_world: Any) -> None:
    settings = copy.deepcopy(faq_state()["settings"])
    settings["groups"][0]["roleId"] = "new_employee"
    faq_world.import_state({"settings": settings})
    report = faq_world.sync()
    (change,) = report["changes"]
    assert (change["kind"], change["reason"]) == ("set_roles", "case_2D")
    assert roles_of(faq_world)["u-megan"] == ["hr", "manager", "new_employee"]
    assert roles_of(faq_world)["u-ray"] == ["employee", "hr", "manager"]  # case 1 still
    assert faq_world.sync()["counts"] == {}


def test_new_users_get_a_single_role_when_roles_are_not_synced(make_world: Any) -> None:
    world = make_world(faq_tenant())
    world.import_state(t.emply_state(syncRoles=False))
    report = world.sync()
    assert report["counts"] == {"create_user": 2}
    assert all(c["after"]["roles"] == ["employee"] for c in report["changes"])


def test_settings_mapping_to_unknown_role_is_refused(make_world: Any) -> None:
    world = make_world(faq_tenant())
    world.import_state(faq_state())
    settings = copy.deepcopy(faq_state()["settings"])
    settings["groups"][1]["roleId"] = "chief"
    path = world.tmp / "settings.json"
    path.write_text(__import__("json").dumps({"settings": settings}))
    code, _, err = world.cli("emply", "import", str(path))
    assert code == 2
    assert "settings.groups[1].roleId" in err and "chief" in err


def test_unknown_configured_group_is_reported_in_the_run(make_world: Any) -> None:
    world = make_world(faq_tenant())
    state = faq_state()
    state["settings"]["groups"].append({"groupId": "99999999-0000-4000-8000-000000000000",
                                        "roleId": "manager"})
    world.import_state(state)
    report = world.sync()
    assert [e["reason"] for e in report["errors"]] == ["group_not_found"]
    assert "99999999-0000-4000-8000-000000000000" in report["errors"][0]["message"]
