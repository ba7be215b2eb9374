"""R11: the FAQ's "Synchronize roles" cases, with the FAQ's names and roles, as a table.

Roles: 'Employee' mapped to group Employee, 'HR' mapped to group HR, 'Manager'
unmapped, 'New employee' unmapped for now. Ray Ross and Megan Jordan are both in
groups Employee and HR and have roles Employee, HR, Manager; Ray has an employee
profile, Megan does not.
"""

from __future__ import annotations

import pytest

from shared.reconcile import model
from tests.unit import builders as b

MAPPING: dict[str, str | None] = {"grp-employee": "employee", "grp-hr": "hr"}
RAY = b.entra_user("ray", "ray.ross@contoso.com", name="Ray Ross")
MEGAN = b.entra_user("megan", "megan.jordan@contoso.com", name="Megan Jordan")


def linked(uid: str, roles: list[str], employee: str | None = None) -> model.EmplyUser:
    upn = {"ray": RAY, "megan": MEGAN}[uid].user_principal_name
    return b.emply_user(
        f"u-{uid}",
        username=upn,
        roles=roles,
        entra_id=uid,
        employee_id=employee,
        link_tenant_id=b.TENANT,
        sync_groups=["grp-employee", "grp-hr"],
    )


CASES = [
    # (FAQ case, user, Emply roles, Entra groups, mapping, previous mapping, expected roles)
    (
        "1: Ray Ross has an employee profile: roles are not synced",
        "ray", ["manager"], ["grp-employee", "grp-hr"], MAPPING, MAPPING,
        ["manager"],
    ),
    (
        "2A: Megan's roles match her groups: nothing changes",
        "megan", ["employee", "hr", "manager"], ["grp-employee", "grp-hr"], MAPPING, MAPPING,
        ["employee", "hr", "manager"],
    ),
    (
        "2B: Megan removed from group HR: roles still Employee, HR, Manager",
        "megan", ["employee", "hr", "manager"], ["grp-employee"], MAPPING, MAPPING,
        ["employee", "hr", "manager"],
    ),
    (
        "2C: roles Employee and HR removed in Emply: she gets Employee, HR and loses Manager",
        "megan", ["manager"], ["grp-employee", "grp-hr"], MAPPING, MAPPING,
        ["employee", "hr"],
    ),
    (
        "2D: group Employee now maps to New employee: New employee, HR, Manager",
        "megan", ["employee", "hr", "manager"], ["grp-employee", "grp-hr"],
        {"grp-employee": "new_employee", "grp-hr": "hr"}, MAPPING,
        ["new_employee", "hr", "manager"],
    ),
]


@pytest.mark.parametrize(
    ("case", "who", "roles", "groups", "mapping", "previous", "expected"),
    CASES,
    ids=[c[0].split(":")[0] for c in CASES],
)
def test_faq_synchronize_roles_cases(
    case: str,
    who: str,
    roles: list[str],
    groups: list[str],
    mapping: dict[str, str | None],
    previous: dict[str, str | None],
    expected: list[str],
) -> None:
    entra_user = RAY if who == "ray" else MEGAN
    entra = b.tenant(
        [RAY, MEGAN],
        {g: ([entra_user.id] if g in groups else []) for g in ("grp-employee", "grp-hr")},
    )
    user = linked(who, roles, employee="e-ray" if who == "ray" else None)
    plan = b.run(entra, [user], b.settings(mapping), previous_mapping=previous)

    role_changes = [c for c in plan.changes if c.kind == model.SET_ROLES]
    got = list(role_changes[0].after["roles"]) if role_changes else roles
    assert sorted(got) == sorted(expected), case
    assert not [c for c in plan.changes if c.kind == model.DEACTIVATE_USER]
    if who == "ray":
        assert plan.skips == {model.EMPLOYEE_PROFILE_CONTROLS_ROLES: 1}


def test_case_2d_then_second_run_changes_nothing() -> None:
    new_mapping: dict[str, str | None] = {"grp-employee": "new_employee", "grp-hr": "hr"}
    entra = b.tenant([MEGAN], {"grp-employee": ["megan"], "grp-hr": ["megan"]})
    first = b.run(
        entra, [linked("megan", ["employee", "hr", "manager"])], b.settings(new_mapping),
        previous_mapping=MAPPING,
    )
    after = list(first.changes[0].after["roles"])
    assert first.next_state.previous_mapping == new_mapping
    second = b.run(
        entra, [linked("megan", after)], b.settings(new_mapping),
        previous_mapping=first.next_state.previous_mapping,
    )
    assert second.changes == ()


def test_new_users_get_only_the_default_role_when_roles_are_not_synced() -> None:
    """FAQ: "Why do the users not receive the expected roles, but only a single one?"."""
    entra = b.tenant([MEGAN], {"grp-employee": ["megan"], "grp-hr": ["megan"]})
    plan = b.run(entra, [], b.settings(MAPPING, sync_roles=False))
    assert b.kinds(plan) == [(model.CREATE_USER, "entra-megan", model.CREATE_USER)]
    assert plan.changes[0].after["roles"] == ["employee"]


def test_new_users_get_the_roles_of_all_their_groups_when_roles_are_synced() -> None:
    entra = b.tenant([MEGAN], {"grp-employee": ["megan"], "grp-hr": ["megan"]})
    plan = b.run(entra, [], b.settings(MAPPING))
    assert plan.changes[0].after["roles"] == ["employee", "hr"]


def test_new_user_in_a_group_mapped_to_no_role_gets_the_default_role() -> None:
    entra = b.tenant([MEGAN], {"grp-scope": ["megan"]})
    plan = b.run(entra, [], b.settings({"grp-scope": None}, default_role="new_employee"))
    assert plan.changes[0].after["roles"] == ["new_employee"]


def test_administrator_role_is_never_removed_by_role_sync() -> None:
    """FAQ: "Emply users with administrator roles are not updated via role synchronization"."""
    entra = b.tenant([MEGAN], {"grp-employee": ["megan"], "grp-hr": []})
    plan = b.run(entra, [linked("megan", ["administrator", "manager"])], b.settings(MAPPING))
    (change,) = plan.changes
    assert change.after["roles"] == ["administrator", "employee"]


def test_administrator_role_survives_a_mapping_change_away_from_it() -> None:
    entra = b.tenant([MEGAN], {"grp-employee": ["megan"]})
    plan = b.run(
        entra,
        [linked("megan", ["administrator"])],
        b.settings({"grp-employee": "employee"}),
        previous_mapping={"grp-employee": "administrator"},
    )
    (change,) = plan.changes
    assert "administrator" in change.after["roles"]


def test_first_time_role_sync_applies_the_subset_rule_without_migration() -> None:
    entra = b.tenant([MEGAN], {"grp-employee": ["megan"], "grp-hr": ["megan"]})
    plan = b.run(
        entra, [linked("megan", ["employee", "hr", "manager"])],
        b.settings({"grp-employee": "new_employee", "grp-hr": "hr"}),
        previous_mapping=None,
    )
    (change,) = plan.changes
    assert change.after["roles"] == ["hr", "new_employee"]  # 2C: M not ⊆ R → R := M


def test_turning_role_sync_off_stops_role_changes() -> None:
    entra = b.tenant([MEGAN], {"grp-employee": ["megan"], "grp-hr": ["megan"]})
    plan = b.run(entra, [linked("megan", ["manager"])], b.settings(MAPPING, sync_roles=False),
                 previous_mapping=MAPPING)
    assert plan.changes == ()
    # The mapping of the last run that reconciled roles stands until one does again (R11).
    assert plan.next_state.previous_mapping == MAPPING


def test_mapping_change_keeps_old_role_when_another_group_still_maps_to_it() -> None:
    entra = b.tenant([MEGAN], {"grp-employee": ["megan"], "grp-hr": ["megan"]})
    plan = b.run(
        entra, [linked("megan", ["employee"])],
        b.settings({"grp-employee": "new_employee", "grp-hr": "employee"}),
        previous_mapping={"grp-employee": "employee", "grp-hr": "employee"},
    )
    (change,) = plan.changes
    assert sorted(change.after["roles"]) == ["employee", "new_employee"]
