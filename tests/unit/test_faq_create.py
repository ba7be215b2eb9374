"""R9 `writeBack.create`, as the FAQ words it, planned purely.

FAQ: "When connecting an employee profile in Emply with a user in Microsoft Entra ID, you
must create an account for the employee first." FAQ: "External users that are not part
of the connected Microsoft Entra ID can be created in Emply." FAQ (hybrid): "the three
extra options (create, update, delete) are not possible to enable."
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.reconcile import entra_create, explain, model, planner
from tests.unit.builders import NOW, TENANT

GROUP = "g-emp"
OTHER = model.EntraUser("a-other", "other@contoso.com", "shared@contoso.com", "Other", True)


def employee(**fields: Any) -> model.Employee:
    base: dict[str, Any] = {"id": "e-ray", "email": "Ray.Ross@contoso.com",
                            "display_name": "Ray Ross", "given_name": "Ray", "surname": "Ross",
                            "job_title": "Engineer", "status": "active"}
    base.update(fields)
    return model.Employee(**base)


def user(**fields: Any) -> model.EmplyUser:
    base: dict[str, Any] = {"id": "u-ray", "username": "ray.ross@contoso.com",
                            "email": "ray.ross@contoso.com", "employee_id": "e-ray",
                            "roles": ("employee",)}
    base.update(fields)
    return model.EmplyUser(**base)


def world(
    users: tuple[model.EmplyUser, ...] = (),
    employees: tuple[model.Employee, ...] = (),
    entra_users: tuple[model.EntraUser, ...] = (),
    *,
    options: tuple[str, ...] = ("create",),
    hybrid: bool = False,
    allowed: tuple[str, ...] = (),
) -> tuple[model.EntraSnapshot, model.EmplySnapshot, model.Settings]:
    people = (OTHER, *entra_users)
    entra = model.EntraSnapshot(
        tenant_id=TENANT, users={u.id: u for u in people},
        groups={GROUP: model.EntraGroup(GROUP, "Employee", frozenset({OTHER.id}))},
        on_premises_sync_enabled=hybrid, verified_domains=("contoso.com", "Contoso.dk"))
    emply = model.EmplySnapshot(users=users, employees=employees,
                                roles=(model.Role("employee", "Employee"),))
    settings = model.Settings(
        tenant_id=TENANT, groups=(model.GroupMapping(GROUP, "employee"),),
        default_role_id="employee", write_back=options, allowed_domains=allowed)
    return entra, emply, settings


def run(entra: model.EntraSnapshot, emply: model.EmplySnapshot,
        settings: model.Settings) -> model.Plan:
    return planner.plan(entra, emply, settings, model.SyncState(), NOW)


def creates(plan: model.Plan) -> list[model.Change]:
    return [c for c in plan.changes if c.kind == model.ENTRA_CREATE]


def entra(**fields: Any) -> model.EntraUser:
    base: dict[str, Any] = {"id": "a-ray", "user_principal_name": "ray.ross@contoso.com",
                            "mail": None, "display_name": "Ray Ross", "account_enabled": True}
    base.update(fields)
    return model.EntraUser(**base)


# (case, Emply users, employees, Entra users, options, hybrid tenant, created?, skip or
#  problem reason, what explain says)
CASES: list[tuple[str, tuple[model.EmplyUser, ...], tuple[model.Employee, ...],
                  tuple[model.EntraUser, ...], tuple[str, ...], bool, bool, str | None,
                  str]] = [
    ("active employee, verified domain, no Entra user: created",
     (user(),), (employee(),), (), ("create",), False, True, None,
     "created in Entra at the next run (writeBack.create)"),
    ("pending employee (resigning): created",
     (user(),), (employee(status="pending"),), (), ("create",), False, True, None,
     "created in Entra at the next run"),
    ("a verified domain matches whatever its case",
     (user(),), (employee(email="ray@CONTOSO.DK"),), (), ("create",), False, True, None,
     "created in Entra at the next run"),
    ("archived employee: not created",
     (user(),), (employee(status="archived"),), (), ("create",), False, False, None,
     "employee e-ray is archived"),
    ("external domain: stays an external user in Emply",
     (user(),), (employee(email="ray@fabrikam.com"),), (), ("create",), False, False,
     entra_create.EXTERNAL_DOMAIN, "is not a verified domain"),
    ("an Entra user has the e-mail as UPN (any case): not created",
     (user(),), (employee(),), (entra(user_principal_name="RAY.ROSS@contoso.com"),),
     ("create",), False, False, entra_create.ENTRA_USER_EXISTS,
     "already has the e-mail"),
    ("an Entra user (outside the groups) has the e-mail as mail: not created",
     (user(),), (employee(),),
     (entra(user_principal_name="rr@contoso.com", mail="ray.ross@CONTOSO.com"),),
     ("create",), False, False, entra_create.ENTRA_USER_EXISTS,
     "Entra user rr@contoso.com already has the e-mail"),
    ("an in-scope Entra user with the e-mail as mail is linked (R3), not created",
     (user(),), (employee(email="shared@contoso.com"),), (), ("create",), False, False, None,
     "not linked"),
    ("deactivated Emply user: not created",
     (user(status="deactivated"),), (employee(),), (), ("create",), False, False, None,
     "the Emply user is deactivated"),
    ("deleted Emply user: not created",
     (user(status="deleted"),), (employee(),), (), ("create",), False, False, None,
     "the Emply user is deleted"),
    ("create off: nothing",
     (user(),), (employee(),), (), ("update",), False, False, None,
     "writeBack.create is off"),
    ("a UPN Graph would refuse (an accent): never sent, upn_invalid on that user",
     (user(),), (employee(email="Ray.Rösß@contoso.com"),), (), ("create",), False, False,
     "upn_invalid", "never sent"),
    ("hybrid tenant: no create, hybrid_tenant",
     (user(),), (employee(),), (), ("create",), True, False, model.HYBRID_TENANT,
     "hybrid setup"),
]


@pytest.mark.parametrize(
    ("case", "users", "employees", "entra_users", "options", "hybrid", "created", "reason",
     "why"), CASES, ids=[c[0] for c in CASES])
def test_who_gets_an_entra_user(
    case: str, users: tuple[model.EmplyUser, ...], employees: tuple[model.Employee, ...],
    entra_users: tuple[model.EntraUser, ...], options: tuple[str, ...], hybrid: bool,
    created: bool, reason: str | None, why: str,
) -> None:
    snapshots = world(users, employees, entra_users, options=options, hybrid=hybrid)
    plan = run(*snapshots)
    found = creates(plan)
    assert len(found) == int(created)
    if created:
        (change,) = found
        upn = employees[0].email
        assert (change.rule, change.user_id, change.entra_id, dict(change.before)) == (
            "R9", "u-ray", None, {})
        assert change.after["userPrincipalName"] == upn
        assert change.after["accountEnabled"] is True
        assert change.after["mailNickname"] == upn.split("@")[0]
        assert not any("password" in k.lower() for k in change.after)
    if reason is not None:
        assert plan.skips.get(reason) == 1 or reason in [p.reason for p in plan.errors]
    docs = {u.id: {"id": u.id, "username": u.username, "email": u.email,
                   "employeeId": u.employee_id, "status": u.status} for u in users}
    result = explain.explain("u-ray", *snapshots[:2], docs, snapshots[2], plan, NOW)
    assert any(why in sentence for sentence in result["why"]), result["why"]


def test_the_new_user_takes_the_profile_and_no_password() -> None:
    (change,) = creates(run(*world((user(),), (employee(department="R&D"),))))
    assert dict(change.after) == {
        "accountEnabled": True, "displayName": "Ray Ross",
        "userPrincipalName": "Ray.Ross@contoso.com", "mailNickname": "Ray.Ross",
        "givenName": "Ray", "surname": "Ross", "jobTitle": "Engineer", "department": "R&D"}


def test_an_employee_without_a_user_account_gets_nothing() -> None:
    snapshots = world((), (employee(),))
    plan = run(*snapshots)
    assert creates(plan) == []
    result = explain.explain("Ray.Ross@contoso.com", *snapshots[:2], {}, snapshots[2], plan,
                             NOW)
    assert any("has no Emply user account" in s for s in result["why"])
    assert "you must create an account for the employee first" in result["faq"][0]["answer"]


def test_an_allowed_domains_list_limits_creates_to_users_that_would_be_in_scope() -> None:
    plan = run(*world((user(),), (employee(email="ray@contoso.dk"),), allowed=("contoso.com",)))
    assert creates(plan) == [] and plan.skips == {entra_create.EXTERNAL_DOMAIN: 1}


def test_two_users_wanting_one_e_mail_get_none() -> None:
    twin = user(id="u-twin", username="twin", employee_id="e-twin")
    plan = run(*world((user(), twin), (employee(), employee(id="e-twin"))))
    assert creates(plan) == []
    (problem,) = [p for p in plan.errors if p.reason == model.AMBIGUOUS_MATCH]
    assert problem.candidates == ("u-ray", "u-twin")


def test_a_create_a_crash_left_unlinked_is_finished_not_repeated() -> None:
    """The writer marked the user (entraCreate) before its POST; the Entra user exists,
    outside the group and linked to no one: the plan names it, so it is only linked."""
    marked = user(entra_create="ray.ross@contoso.com")
    made = entra(user_principal_name="Ray.Ross@contoso.com")
    (change,) = creates(run(*world((marked,), (employee(),), (made,))))
    assert change.entra_id == "a-ray"
    # Without the mark, the same Entra user is someone else's: not touched.
    assert creates(run(*world((user(),), (employee(),), (made,)))) == []
    # With it, but the Entra user is linked to another Emply user: not touched either.
    holder = user(id="u-holder", username="holder", employee_id=None, entra_id="a-ray",
                  link_tenant_id=TENANT)
    assert creates(run(*world((marked, holder), (employee(),), (made,)))) == []


def test_after_the_create_and_link_the_next_plan_is_empty() -> None:
    """What the writer does (POST, group add, link) makes the next plan empty."""
    entra_snap, emply, settings = world((user(),), (employee(),))
    (change,) = creates(run(entra_snap, emply, settings))
    made = entra(id="a-new", user_principal_name=change.after["userPrincipalName"],
                 given_name="Ray", surname="Ross", job_title="Engineer")
    after = dataclasses.replace(
        entra_snap, users={**entra_snap.users, made.id: made},
        groups={GROUP: model.EntraGroup(GROUP, "Employee", frozenset({OTHER.id, made.id}))})
    linked = dataclasses.replace(emply.users[0], entra_id="a-new", link_tenant_id=TENANT,
                                 linked_domain="contoso.com", sync_groups=(GROUP,))
    both = dataclasses.replace(settings, write_back=("create", "update"))
    again = run(after, dataclasses.replace(emply, users=(linked,)), both)
    assert [c for c in again.changes if c.user_id == "u-ray"] == []


NICKNAME = re.compile(r"[A-Za-z0-9._-]{1,64}")


@given(st.emails(), st.sets(st.from_regex(NICKNAME, fullmatch=True), max_size=20))
def test_nicknames_are_valid_and_made_unique(email: str, taken: set[str]) -> None:
    base = entra_create.mail_nickname(email)
    assert NICKNAME.fullmatch(base) and not base.startswith(".") and not base.endswith(".")
    lowered = frozenset(t.lower() for t in taken)
    unique = entra_create.unique_nickname(base, lowered)
    assert NICKNAME.fullmatch(unique) and unique.lower() not in lowered
