"""Issue 11 through `emply-sync`, against Azurite and the simulator: the FAQ answers the
product used to diverge from, each with its dry run (equal to the real run) and
`explain`. Ray Ross and Megan Jordan are the FAQ's."""

from __future__ import annotations

import copy
from typing import Any

from tests.e2e import tenants as t
from tests.e2e.test_cli_roles import MEGAN, RAY, faq_state, faq_tenant, roles_of

G_SALES = "10000000-0000-4000-8000-000000000003"


def outcome(report: dict[str, Any]) -> list[tuple[Any, ...]]:
    """What a run decided, without what differs between two runs (ids, times)."""
    return sorted((c["kind"], c["userId"], c["entraId"], c["reason"]) for c in report["changes"])


def dry_then_real(world: Any, *extra: str) -> dict[str, Any]:
    dry = world.sync("--dry-run", *extra)
    real = world.sync(*extra)
    assert dry["dryRun"] is True and real["dryRun"] is False
    assert outcome(dry) == outcome(real)
    assert dry["counts"] == real["counts"]
    assert [e["reason"] for e in dry["errors"]] == [e["reason"] for e in real["errors"]]
    return real


def with_sales(world: Any, megan_in_sales: bool) -> dict[str, Any]:
    tenant = faq_tenant()
    tenant["groups"].append({"id": G_SALES, "displayName": "Sales",
                             "members": [MEGAN["id"]] if megan_in_sales else []})
    world.sim.put_tenant(tenant)
    return tenant


def sales_settings(**changes: Any) -> dict[str, Any]:
    state = faq_state()
    settings = state["settings"]
    settings["groups"].append({"groupId": G_SALES, "roleId": "sales"})
    settings.update(changes)
    return {"settings": settings,
            "roles": [*state["roles"], {"id": "sales", "name": "Sales", "administrator": False}]}


def linked_faq_world(make_world: Any) -> Any:
    world = make_world(faq_tenant())
    world.import_state(faq_state())
    assert world.sync()["counts"] == {"link_user": 2}
    return world


def test_megan_joins_a_mapped_group_and_keeps_manager(make_world: Any) -> None:
    """FAQ: "If you wish to give more roles to a user, you can connect different Entra ID
    groups with each their own role"."""
    world = linked_faq_world(make_world)
    world.import_state(sales_settings())
    assert world.sync()["counts"] == {}
    with_sales(world, megan_in_sales=True)
    report = dry_then_real(world)
    assert outcome(report) == [("set_roles", "u-megan", MEGAN["id"], "more_groups")]
    assert roles_of(world)["u-megan"] == ["employee", "hr", "manager", "sales"]
    assert roles_of(world)["u-ray"] == ["employee", "hr", "manager"]  # case 1
    explained = world.ok("explain", "megan.jordan@contoso.com")
    assert "roles synced: its groups map to employee, hr, sales" in explained
    assert "Last change: set_roles (R11, more_groups)" in explained
    assert world.sync()["counts"] == {}


def test_case_2d_made_while_the_integration_was_disabled_is_applied_later(
    make_world: Any,
) -> None:
    world = linked_faq_world(make_world)
    settings = copy.deepcopy(faq_state()["settings"])
    settings["groups"][0]["roleId"] = "new_employee"
    world.import_state({"settings": {**settings, "enabled": False}})
    assert world.sync()["counts"] == {}
    world.import_state({"settings": settings})
    report = dry_then_real(world)
    assert outcome(report) == [("set_roles", "u-megan", MEGAN["id"], "case_2D")]
    assert roles_of(world)["u-megan"] == ["hr", "manager", "new_employee"]


def test_the_account_of_the_employee_is_linked_through_the_employee_email(
    make_world: Any,
) -> None:
    """FAQ: "Emply files user and employee connected to an e-mail address"."""
    world = make_world(faq_tenant())
    state = faq_state()
    state["users"][0].update(username="rross", email="rr@example.org")
    world.import_state(state)
    report = dry_then_real(world)
    assert ("link_user", "u-ray", RAY["id"], "employee_email") in outcome(report)
    assert "create_user" not in report["counts"]
    explained = world.ok("explain", "rross")
    assert f"linked to Entra user {RAY['userPrincipalName']}" in explained


def test_an_account_deleted_and_created_again_connects_to_the_same_user(
    make_world: Any,
) -> None:
    world = linked_faq_world(make_world)
    tenant = faq_tenant()
    tenant["users"] = [RAY]
    for group in tenant["groups"]:
        group["members"] = [RAY["id"]]
    world.sim.put_tenant(tenant)
    gone = world.sync()
    assert outcome(gone) == [("deactivate_user", "u-megan", MEGAN["id"], "deleted_in_entra")]

    again = copy.deepcopy(faq_tenant())  # the module's user dicts stay as they are
    new_id = t.uid(22)
    for user in again["users"]:
        if user["id"] == MEGAN["id"]:
            user["id"] = new_id
    for group in again["groups"]:
        group["members"] = [new_id if m == MEGAN["id"] else m for m in group["members"]]
    world.sim.put_tenant(again)
    report = dry_then_real(world)
    assert outcome(report) == [
        ("link_user", "u-megan", new_id, "entra_account_replaced"),
        ("reactivate_user", "u-megan", new_id, "reactivate_user"),
    ]
    megan = world.users()["megan.jordan@contoso.com"]
    assert (megan["status"], megan["entraId"]) == ("active", new_id)
    assert len(world.users()) == 2  # no second login
    explained = world.ok("explain", "megan.jordan@contoso.com")
    assert "created in its place" in explained


def test_explain_answers_for_an_entra_user_that_has_no_emply_user(make_world: Any) -> None:
    disabled = t.entra_user(30, "Dee Sabled", accountEnabled=False)
    outsider = t.entra_user(31, "Otto Side")
    tenant = faq_tenant()
    tenant["users"] += [disabled, outsider]
    tenant["groups"][0]["members"].append(disabled["id"])
    world = make_world(tenant)
    world.import_state(faq_state())
    world.sync()
    text = world.ok("explain", disabled["userPrincipalName"])
    assert "the Entra account is disabled" in text
    text = world.ok("explain", outsider["id"])
    assert "not a member of any configured group" in text
    assert "FAQ: Why do the users not receive the expected roles" in text
    code, _, err = world.cli("explain", "nobody@contoso.com")
    assert code == 2 and "nobody@contoso.com" in err


def test_the_user_domain_changed_with_no_allowed_domains(make_world: Any) -> None:
    """FAQ: "Why are users in Emply being deactivated? … The user domain has been
    changed": with `allowedDomains` empty, the domain Megan was linked with is hers."""
    world = linked_faq_world(make_world)
    moved = copy.deepcopy(faq_tenant())
    for user in moved["users"]:
        if user["id"] == MEGAN["id"]:
            user["userPrincipalName"] = "megan.jordan@fabrikam.com"
    world.sim.put_tenant(moved)
    report = dry_then_real(world)
    assert outcome(report) == [("deactivate_user", "u-megan", MEGAN["id"], "domain_changed")]
    explained = world.ok("explain", "u-megan")
    assert "changed from contoso.com (when it was linked) to fabrikam.com" in explained
    world.sim.put_tenant(faq_tenant())  # moved back: the sync's deactivation is undone
    back = dry_then_real(world)
    assert outcome(back) == [("reactivate_user", "u-megan", MEGAN["id"], "reactivate_user")]


def test_a_pending_employee_whose_resignation_date_is_removed_is_active_again(
    make_world: Any,
) -> None:
    """FAQ: "enter a resignation date for the employee in Emply so that the employee is
    moved to 'Pending' and then 'Archived'" — and back to Active when it is removed."""
    world = linked_faq_world(make_world)
    state = world.export()
    state["employees"][0]["resignationDate"] = "2999-01-01"
    world.import_state(state, "--replace")
    assert world.sync()["counts"] == {"employee_status": 1}
    state = world.export()
    assert state["employees"][0]["status"] == "pending"
    state["employees"][0]["resignationDate"] = None
    world.import_state(state, "--replace")
    report = dry_then_real(world)
    assert [(c["kind"], c["employeeId"], c["reason"]) for c in report["changes"]] == [
        ("employee_status", "e-ray", "active")]
    assert "employee e-ray is Active: no resignation date" in world.ok("explain", "u-ray")
