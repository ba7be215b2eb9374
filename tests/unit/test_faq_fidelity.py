"""Issue 11: where the product diverged from the FAQ, each answer as a table row.

R11 "more groups, more roles" and the per-user basis that keeps case 2D; R3 step 4
(user and employee connected through the e-mail) and re-created accounts; R7's
`minCount`; R6 "the user domain has been changed" with no allowed domains; R8's
pending employee whose resignation date is removed; R18 for Entra users with no Emply
user; settings for features this version does not have. Ray Ross and Megan Jordan
are the FAQ's.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest

from shared.reconcile import convert, entity_writes, explain, model
from tests.unit import builders as b

EMP, HR, SALES = "grp-employee", "grp-hr", "grp-sales"
MAPPING: dict[str, str | None] = {EMP: "employee", HR: "hr", SALES: None}
MEGAN = b.entra_user("megan", "megan.jordan@contoso.com", name="Megan Jordan")
RAY = b.entra_user("ray", "ray.ross@contoso.com", name="Ray Ross")


def megan(roles: list[str], basis: dict[str, str | None] | None, **kw: Any) -> model.EmplyUser:
    kw.setdefault("sync_groups", [EMP, HR])
    kw.setdefault("linked_domain", "contoso.com")
    return b.emply_user(
        "u-megan", username=MEGAN.user_principal_name, roles=roles, entra_id="megan",
        link_tenant_id=b.TENANT, role_basis=basis, **kw,
    )


doc = b.user_doc


def applied(users: list[model.EmplyUser], plan: model.Plan) -> list[model.EmplyUser]:
    """The users as a run that applied `plan` leaves them."""
    docs = {u.id: doc(u) for u in users}
    for written in entity_writes.apply_plan(docs, {}, plan, "run", "2026-11-26T12:00:00Z").users:
        docs[written["id"]] = written
    return [convert.emply_user(d) for d in docs.values()]


def roles_after(plan: model.Plan, user: model.EmplyUser) -> list[str]:
    changes = [c for c in plan.changes if c.kind == model.SET_ROLES and c.user_id == user.id]
    return list(changes[-1].after["roles"]) if changes else list(user.roles)


# --- 1. R11: more groups give more roles -------------------------------------------

MORE_ROLES = [
    # (FAQ words, Megan's groups now, mapping now, her basis, roles after, reason)
    ("Sales is mapped to a role: Megan gains it and keeps Manager",
     [EMP, HR, SALES], {**MAPPING, SALES: "sales"}, {EMP: "employee", HR: "hr", SALES: None},
     ["employee", "hr", "manager", "sales"], "more_groups"),
    ("Megan joins the already mapped group Sales: she gains its role, keeps Manager",
     [EMP, HR, SALES], {**MAPPING, SALES: "sales"}, {EMP: "employee", HR: "hr"},
     ["employee", "hr", "manager", "sales"], "more_groups"),
    ("Sales is newly configured with its own role: Megan gains it, keeps Manager",
     [EMP, HR, SALES], {**MAPPING, SALES: "sales"}, {EMP: "employee", HR: "hr"},
     ["employee", "hr", "manager", "sales"], "more_groups"),
    ("2A: her roles match her groups: nothing changes",
     [EMP, HR], MAPPING, {EMP: "employee", HR: "hr"},
     ["employee", "hr", "manager"], None),
    ("2B: removed from group HR: roles still Employee, HR, Manager",
     [EMP], MAPPING, {EMP: "employee", HR: "hr"},
     ["employee", "hr", "manager"], None),
    ("2D: group Employee now maps to New employee: New employee, HR, Manager",
     [EMP, HR], {**MAPPING, EMP: "new_employee"}, {EMP: "employee", HR: "hr"},
     ["new_employee", "hr", "manager"], "case_2D"),
    ("2D and a new group at once: both apply, nothing else is lost",
     [EMP, HR, SALES], {EMP: "new_employee", HR: "hr", SALES: "sales"},
     {EMP: "employee", HR: "hr"},
     ["new_employee", "hr", "manager", "sales"], "case_2D+more_groups"),
]


@pytest.mark.parametrize(("case", "groups", "mapping", "basis", "expected", "reason"),
                         MORE_ROLES, ids=[row[0].split(":")[0] for row in MORE_ROLES])
def test_more_groups_give_more_roles(
    case: str, groups: list[str], mapping: dict[str, str | None],
    basis: dict[str, str | None], expected: list[str], reason: str | None,
) -> None:
    """FAQ: "If you wish to give more roles to a user, you can connect different Entra ID
    groups with each their own role"."""
    entra = b.tenant([MEGAN], {g: (["megan"] if g in groups else []) for g in mapping})
    user = megan(["employee", "hr", "manager"], basis)
    plan = b.run(entra, [user], b.settings(mapping), previous_mapping=MAPPING)
    assert sorted(roles_after(plan, user)) == sorted(expected), case
    assert [c.reason for c in plan.changes if c.kind == model.SET_ROLES] == (
        [reason] if reason else []
    )
    again = b.run(entra, applied([user], plan), b.settings(mapping),
                  previous_mapping=plan.next_state.previous_mapping)
    assert again.changes == () and again.bookkeeping == (), case


def test_2c_still_applies_when_a_mapped_role_was_taken_away_in_emply() -> None:
    """FAQ case 2C: roles Employee and HR removed in Emply; she gets Employee, HR and
    loses Manager (a new group cannot hide that)."""
    entra = b.tenant([MEGAN], {EMP: ["megan"], HR: ["megan"], SALES: ["megan"]})
    user = megan(["manager"], {EMP: "employee", HR: "hr"})
    plan = b.run(entra, [user], b.settings({**MAPPING, SALES: "sales"}))
    assert sorted(roles_after(plan, user)) == ["employee", "hr", "sales"]
    assert [c.reason for c in plan.changes] == ["case_2C"]


# --- 2. R11: case 2D is not lost ----------------------------------------------------

NEW_MAPPING: dict[str, str | None] = {EMP: "new_employee", HR: "hr"}
OLD_MAPPING: dict[str, str | None] = {EMP: "employee", HR: "hr"}


@pytest.mark.parametrize("meanwhile", ["integration disabled", "roles off", "deactivated"])
def test_a_mapping_change_made_meanwhile_is_case_2d_later(meanwhile: str) -> None:
    """FAQ case 2D: "the sync will change the roles for Megan Jordan to match the new
    mapping": New employee, HR, Manager — also when the mapping changed while the
    integration was disabled, roles were not synced, or Megan was deactivated."""
    both = b.tenant([MEGAN], {EMP: ["megan"], HR: ["megan"]})
    users = [megan(["employee", "hr", "manager"], None, linked_domain=None)]
    first = b.run(both, users, b.settings(OLD_MAPPING))  # roles reconciled: her basis
    users = applied(users, first)
    assert users[0].role_basis == OLD_MAPPING

    entra = both
    if meanwhile == "integration disabled":
        cfg = b.settings(NEW_MAPPING, enabled=False)
    elif meanwhile == "roles off":
        cfg = b.settings(NEW_MAPPING, sync_roles=False)
    else:
        entra = b.tenant([MEGAN], {EMP: [], HR: []})
        cfg = b.settings(NEW_MAPPING)
    second = b.run(entra, users, cfg, previous_mapping=first.next_state.previous_mapping)
    assert not [c for c in second.changes if c.kind == model.SET_ROLES]
    users = applied(users, second)

    third = b.run(both, users, b.settings(NEW_MAPPING),
                  previous_mapping=second.next_state.previous_mapping)
    assert sorted(roles_after(third, users[0])) == ["hr", "manager", "new_employee"]
    assert [c.reason for c in third.changes if c.kind == model.SET_ROLES] == ["case_2D"]


def test_users_linked_before_the_basis_existed_keep_the_runs_mapping_as_theirs() -> None:
    """Migration: a user with no stored basis uses the state's previous mapping over the
    groups it was in, so an upgrade loses no 2D; a deactivated user gets it stored."""
    entra = b.tenant([MEGAN, RAY], {EMP: ["megan"], HR: ["megan"]})
    ray = b.emply_user("u-ray", username=RAY.user_principal_name, entra_id="ray",
                       link_tenant_id=b.TENANT, status="deactivated", deactivated_by="emply",
                       sync_groups=(EMP,))
    users = [megan(["employee", "hr", "manager"], None, linked_domain=None), ray]
    plan = b.run(entra, users, b.settings(NEW_MAPPING), previous_mapping=OLD_MAPPING)
    assert sorted(roles_after(plan, users[0])) == ["hr", "manager", "new_employee"]
    kept = {k.user_id: k.fields for k in plan.bookkeeping}
    assert kept["u-megan"]["roleBasis"] == NEW_MAPPING
    assert kept["u-ray"]["roleBasis"] == {EMP: "employee"}


# --- 3. R3 step 4: user and employee connected through the e-mail -----------------------


def test_the_account_holding_the_employee_profile_is_linked_through_its_email() -> None:
    """FAQ: "Emply files user and employee connected to an e-mail address, therefore the
    two e-mails must be identical." Ray's account has another username and e-mail; his
    employee profile has the Entra mail."""
    employee = model.Employee("e-ray", "Ray.Ross@contoso.com")
    account = b.emply_user("u-ray", username="rross", email="rr@old.example",
                           employee_id="e-ray")
    entra = b.tenant([RAY], {EMP: ["ray"], HR: []})
    plan = b.run(entra, [account], b.settings(OLD_MAPPING), employees=(employee,))
    assert b.kinds(plan) == [(model.LINK_USER, "u-ray", model.LINKED_BY_EMPLOYEE_EMAIL)]
    assert plan.errors == ()
    assert plan.skips == {model.EMPLOYEE_PROFILE_CONTROLS_ROLES: 1}  # case 1


# --- 4. R3: accounts deleted and re-created in Entra ------------------------------------

MEGAN_AGAIN = dataclasses.replace(MEGAN, id="megan-2")


def test_a_recreated_account_is_linked_again_and_reactivated() -> None:
    old = megan(["employee", "hr"], OLD_MAPPING, status="deactivated", deactivated_by="sync",
                deactivation_reason=model.DELETED_IN_ENTRA)
    entra = b.tenant([MEGAN_AGAIN], {EMP: ["megan-2"], HR: ["megan-2"]})
    plan = b.run(entra, [old], b.settings(OLD_MAPPING))
    assert b.kinds(plan) == [
        (model.LINK_USER, "u-megan", model.ENTRA_ACCOUNT_REPLACED),
        (model.REACTIVATE_USER, "u-megan", model.REACTIVATE_USER),
    ]
    assert plan.changes[0].after["entraId"] == "megan-2"
    assert plan.errors == ()


def test_deleted_and_recreated_between_two_runs_is_relinked_at_once() -> None:
    """The old link's Entra user is gone and a new account has the same UPN: the active
    user is connected to it in the same run (no deactivation, no second `entra-…` login),
    as two runs would otherwise reach."""
    user = megan(["employee", "hr"], OLD_MAPPING)
    entra = b.tenant([MEGAN_AGAIN], {EMP: ["megan-2"], HR: ["megan-2"]})
    cfg = b.settings(OLD_MAPPING)
    first = b.run(entra, [user], cfg)
    assert b.kinds(first) == [(model.LINK_USER, "u-megan", model.ENTRA_ACCOUNT_REPLACED)]
    assert first.errors == ()
    second = b.run(entra, applied([user], first), cfg,
                   previous_mapping=first.next_state.previous_mapping)
    assert second.changes == () and second.errors == ()


def test_a_user_deactivated_for_another_reason_is_not_taken_over() -> None:
    old = megan(["employee"], OLD_MAPPING, status="deactivated", deactivated_by="sync",
                deactivation_reason=model.REMOVED_FROM_GROUPS)
    entra = b.tenant([MEGAN_AGAIN], {EMP: ["megan-2"], HR: []})
    plan = b.run(entra, [old], b.settings(OLD_MAPPING))
    assert plan.changes == ()
    assert [e.reason for e in plan.errors] == [model.USERNAME_TAKEN]


# --- 5. R7: the guard in small organisations ---------------------------------------------


def staff(n: int) -> tuple[list[model.EntraUser], list[model.EmplyUser]]:
    people = [b.entra_user(f"p{i}") for i in range(n)]
    users = [b.emply_user(f"u{i}", entra_id=f"p{i}", link_tenant_id=b.TENANT, roles=["employee"],
                          sync_groups=(EMP,), linked_domain="contoso.com",
                          role_basis={EMP: "employee"}) for i in range(n)]
    return people, users


GUARD = [
    # (what happens, linked users, leavers, guard, held?)
    ("one leaver of four: never held by the default guard", 4, 1, (50, 20, 10), False),
    ("four leavers of four: below minCount 10", 4, 4, (50, 20, 10), False),
    ("9 of 40 leave (22 %): below minCount, applied", 40, 9, (50, 20, 10), False),
    ("10 of 40 leave (25 %): minCount reached and over 20 %: held", 40, 10, (50, 20, 10), True),
    ("10 of 60 leave (17 %): under 20 %: applied", 60, 10, (50, 20, 10), False),
    ("51 of 1,000 leave: over maxCount whatever minCount says", 1000, 51, (50, 20, 100), True),
]


@pytest.mark.parametrize(("case", "n", "leavers", "guard", "held"), GUARD,
                         ids=[row[0].split(":")[0] for row in GUARD])
def test_guard_min_count(case: str, n: int, leavers: int, guard: tuple[int, float, int],
                         held: bool) -> None:
    people, users = staff(n)
    entra = b.tenant(people, {EMP: [p.id for p in people[leavers:]]})
    plan = b.run(entra, users, b.settings({EMP: "employee"}, guard=guard))
    assert (plan.status == "needs_approval") is held, case
    assert len(plan.held if held else
               [c for c in plan.changes if c.kind == model.DEACTIVATE_USER]) == leavers


# --- 6. R6: "The user domain has been changed" -----------------------------------------

FABRIKAM_MEGAN = dataclasses.replace(MEGAN, user_principal_name="megan.jordan@fabrikam.com")

DOMAINS = [
    # (what happens, allowed domains, linked domain, Entra user, changes)
    ("domain changed, no allowed domains: deactivated", (), "contoso.com", FABRIKAM_MEGAN,
     [(model.DEACTIVATE_USER, "u-megan", model.DOMAIN_CHANGED)]),
    ("same domain, no allowed domains: nothing", (), "contoso.com", MEGAN, []),
    ("link from before the domain was recorded: takes its current one, no deactivation",
     (), None, FABRIKAM_MEGAN, []),
    ("domain moved within the allowed list: nothing", ("contoso.com", "fabrikam.com"),
     "contoso.com", FABRIKAM_MEGAN, []),
    ("domain not in the allowed list: deactivated", ("contoso.com",), "contoso.com",
     FABRIKAM_MEGAN, [(model.DEACTIVATE_USER, "u-megan", model.DOMAIN_CHANGED)]),
]


@pytest.mark.parametrize(("case", "allowed", "linked", "entra_user", "expected"), DOMAINS,
                         ids=[row[0].split(":")[0] for row in DOMAINS])
def test_the_user_domain_has_been_changed(
    case: str, allowed: tuple[str, ...], linked: str | None, entra_user: model.EntraUser,
    expected: list[tuple[str, str, str]],
) -> None:
    """FAQ: "Why are users in Emply being deactivated? … The user domain has been changed"."""
    people, bystanders = staff(20)
    entra = b.tenant([entra_user, *people], {EMP: ["megan", *(p.id for p in people)]})
    user = megan(["employee"], {EMP: "employee"}, sync_groups=[EMP], linked_domain=linked)
    cfg = b.settings({EMP: "employee"}, allowed_domains=(*allowed, *(("contoso.com",)
                                                                     if allowed else ())))
    plan = b.run(entra, [user, *bystanders], cfg)
    assert b.kinds(plan) == expected, case
    after = applied([user, *bystanders], plan)
    again = b.run(entra, after, cfg, previous_mapping=plan.next_state.previous_mapping)
    assert again.changes == () and again.bookkeeping == (), case
    if expected:
        words = plan.changes[0].message
        assert "fabrikam.com" in words
        # Back to the domain it was linked with: reactivated (it was the sync's doing).
        back = b.tenant([MEGAN, *people], {EMP: ["megan", *(p.id for p in people)]})
        home = b.run(back, after, cfg, previous_mapping=plan.next_state.previous_mapping)
        assert (model.REACTIVATE_USER, "u-megan", model.REACTIVATE_USER) in b.kinds(home)


# --- 7. R8: a pending employee whose resignation date is removed ---------------------

TOMORROW = b.NOW.date() + dt.timedelta(days=1)
YESTERDAY = b.NOW.date() - dt.timedelta(days=1)
EMPLOYEES = [
    # (FAQ words, status, resignation date, status after)
    ("resignation date removed from a pending employee: active again", "pending", None,
     "active"),
    ("resignation date in the future: pending", "active", TOMORROW, "pending"),
    ("resignation date reached: archived", "pending", YESTERDAY, "archived"),
    ("archived is final, even with the date removed", "archived", None, "archived"),
    ("archived is final, even with the date moved to the future", "archived", TOMORROW,
     "archived"),
    ("no resignation date: active stays active", "active", None, "active"),
]


@pytest.mark.parametrize(("case", "status", "date", "expected"), EMPLOYEES,
                         ids=[row[0].split(":")[0] for row in EMPLOYEES])
def test_employee_status_follows_the_resignation_date(
    case: str, status: str, date: dt.date | None, expected: str
) -> None:
    """FAQ: "enter a resignation date for the employee in Emply so that the employee is
    moved to 'Pending' and then 'Archived' when you reach the resignation date"."""
    ray = model.Employee("e-ray", "ray.ross@contoso.com", status=status, resignation_date=date)
    plan = b.run(b.tenant([], {EMP: []}), [], b.settings({EMP: "employee"}), employees=(ray,))
    changes = [c for c in plan.changes if c.kind == model.EMPLOYEE_STATUS]
    assert [c.after["status"] for c in changes] == ([] if expected == status else [expected])


# --- 8. R18: explain for Entra users with no Emply user ----------------------------------

OFF = b.entra_user("off", "off@contoso.com", enabled=False)
OUTSIDE = b.entra_user("outside", "outside@contoso.com")
ELSEWHERE = b.entra_user("elsewhere", "someone@fabrikam.com")
NEWBIE = b.entra_user("newbie", "newbie@contoso.com")
ANNA = b.entra_user("anna", "anna@contoso.com")

ENTRA_EXPLAINED = [
    # (key, words that must be in `why`, FAQ question fragment or None)
    ("off", "the Entra account is disabled", None),
    ("outside@contoso.com", "not a member of any configured group",
     "Why do the users not receive the expected roles"),
    ("SOMEONE@fabrikam.com", "is not one of the allowed domains",
     "Why are users in Emply being deactivated"),
    ("anna", "employee exists without a user account", "Why is there an error"),
    ("newbie@contoso.com", "the next run creates or links it", None),
]


@pytest.mark.parametrize(("key", "words", "faq"), ENTRA_EXPLAINED,
                         ids=[row[0] for row in ENTRA_EXPLAINED])
def test_explain_answers_for_entra_users_without_an_emply_user(
    key: str, words: str, faq: str | None
) -> None:
    entra = b.tenant([OFF, OUTSIDE, ELSEWHERE, NEWBIE, ANNA],
                     {EMP: ["off", "elsewhere", "newbie", "anna"]})
    cfg = b.settings({EMP: "employee"}, allowed_domains=("contoso.com",))
    employees = (model.Employee("e-anna", "anna@contoso.com"),)
    emply = model.EmplySnapshot((), employees, b.ROLES)
    plan = b.run(entra, [], cfg, employees=employees)
    result = explain.explain(key, entra, emply, {}, cfg, plan, b.NOW)
    assert "entraUser" in result or key == "anna"
    assert any(words in why for why in result["why"]), result["why"]
    if faq:
        assert any(faq in a["question"] for a in result["faq"]), result["faq"]


def test_explain_by_entra_object_id_of_a_linked_user_explains_the_emply_user() -> None:
    entra = b.tenant([MEGAN], {EMP: ["megan"]})
    user = megan(["employee"], {EMP: "employee"}, sync_groups=[EMP])
    cfg = b.settings({EMP: "employee"})
    plan = b.run(entra, [user], cfg)
    emply = model.EmplySnapshot((user,), (), b.ROLES)
    result = explain.explain("megan", entra, emply, {"u-megan": doc(user)}, cfg, plan, b.NOW)
    assert result["user"]["id"] == "u-megan"


def test_explain_still_refuses_what_nobody_has() -> None:
    entra = b.tenant([MEGAN], {EMP: ["megan"]})
    cfg = b.settings({EMP: "employee"})
    emply = model.EmplySnapshot((), (), b.ROLES)
    with pytest.raises(explain.NotFound):
        explain.explain("nobody@contoso.com", entra, emply, {}, cfg, b.run(entra, [], cfg), b.NOW)


# --- R4 with an e-mail an Emply user already has --------------------------------------


def test_no_second_user_gets_an_email_an_emply_user_already_has() -> None:
    """Emply files a user by its e-mail: an Entra user whose mail a linked user already
    has (the mail moved to another account) is not created; nor is a second Entra user
    with the same mail in one run. An exported state thus always imports again."""
    moved = b.entra_user("newcomer", "newcomer@contoso.com", mail="megan.jordan@contoso.com")
    twin = b.entra_user("twin", "twin@contoso.com", mail="shared@contoso.com")
    other = b.entra_user("other", "other@contoso.com", mail="shared@contoso.com")
    entra = b.tenant([MEGAN, moved, twin, other],
                     {EMP: ["megan", "newcomer", "twin", "other"], HR: []})
    user = megan(["employee"], {EMP: "employee"}, sync_groups=[EMP])
    plan = b.run(entra, [user], b.settings(OLD_MAPPING))
    assert b.kinds(plan) == [(model.CREATE_USER, "entra-other", model.CREATE_USER)]
    taken = {e.entra_id: e for e in plan.errors if e.reason == model.EMAIL_TAKEN}
    assert set(taken) == {"newcomer", "twin"}
    assert "Emply user u-megan already has this e-mail" in taken["newcomer"].message
    assert "Emply user entra-other already has this e-mail" in taken["twin"].message
