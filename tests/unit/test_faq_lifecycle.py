"""R2–R8 and R12: each FAQ answer about users and employees as a named test."""

from __future__ import annotations

import datetime as dt

import pytest

from shared.reconcile import model
from tests.unit import builders as b

ANNA = b.entra_user("anna", "Anna.Berg@contoso.com", mail="anna@contoso.com")
BO = b.entra_user("bo", "bo@contoso.com")
MAP: dict[str, str | None] = {"grp-staff": "employee"}


def staff(*users: model.EntraUser, **extra: list[str]) -> model.EntraSnapshot:
    return b.tenant(list(users), {"grp-staff": [u.id for u in users], **extra})


def linked(uid: str, **kw: object) -> model.EmplyUser:
    kw.setdefault("entra_id", uid)
    kw.setdefault("link_tenant_id", b.TENANT)
    kw.setdefault("sync_groups", ["grp-staff"])
    kw.setdefault("roles", ["employee"])
    return b.emply_user(f"u-{uid}", **kw)  # type: ignore[arg-type]


def with_bystanders(
    entra: model.EntraSnapshot, cfg: model.Settings, n: int = 10
) -> tuple[model.EntraSnapshot, list[model.EmplyUser]]:
    """Add n linked users who stay in scope, so the guard's percentage is not reached."""
    people, _ = many_linked(n)
    group = cfg.groups[0].group_id
    groups = dict(entra.groups)
    old = groups.get(group, model.EntraGroup(group, group, frozenset()))
    groups[group] = model.EntraGroup(group, old.display_name, old.members | {p.id for p in people})
    snapshot = model.EntraSnapshot(
        entra.tenant_id, {**entra.users, **{p.id: p for p in people}}, groups
    )
    return snapshot, [linked(p.id, sync_groups=[group]) for p in people]


def many_linked(n: int) -> tuple[list[model.EntraUser], list[model.EmplyUser]]:
    entra = [b.entra_user(f"p{i}") for i in range(n)]
    return entra, [linked(f"p{i}") for i in range(n)]


# --- R2 scope -------------------------------------------------------------------


def test_members_of_nested_groups_are_in_scope_and_cycles_are_harmless() -> None:
    entra = b.tenant([ANNA], {"grp-staff": ["grp-sub"], "grp-sub": ["anna", "grp-staff"]})
    plan = b.run(entra, [], b.settings(MAP))
    assert b.kinds(plan) == [(model.CREATE_USER, "entra-anna", model.CREATE_USER)]
    assert plan.changes[0].after["syncGroups"] == ["grp-staff"]


def test_disabled_accounts_and_users_outside_allowed_domains_are_not_created() -> None:
    off = b.entra_user("off", enabled=False)
    other = b.entra_user("ext", "ext@fabrikam.com")
    plan = b.run(staff(off, other, BO), [], b.settings(MAP, allowed_domains=("contoso.com",)))
    assert b.kinds(plan) == [(model.CREATE_USER, "entra-bo", model.CREATE_USER)]


# --- R3 matching ("Can I manually create users...?") ----------------------------------


@pytest.mark.parametrize(
    ("manual", "step"),
    [
        (dict(username="  ANNA.BERG@contoso.com ", email="x@contoso.com"), "username = UPN"),
        (dict(username="anna", email="Anna@Contoso.com"), "e-mail = Entra mail"),
    ],
)
def test_manual_user_with_same_username_or_email_is_connected(
    manual: dict[str, str], step: str
) -> None:
    plan = b.run(staff(ANNA), [b.emply_user("u-manual", **manual)], b.settings(MAP))
    (link, *_) = plan.changes
    assert (link.kind, link.user_id, link.after["entraId"]) == (
        model.LINK_USER, "u-manual", "anna"
    )
    assert step in link.message
    assert not any(c.kind == model.CREATE_USER for c in plan.changes)


def test_username_match_wins_over_email_match() -> None:
    users = [
        b.emply_user("u-by-mail", username="someone", email="anna@contoso.com"),
        b.emply_user("u-by-name", username="anna.berg@contoso.com", email="other@x.com"),
    ]
    plan = b.run(staff(ANNA), users, b.settings(MAP))
    assert plan.changes[0].user_id == "u-by-name"


def test_two_candidates_is_ambiguous_and_changes_nothing() -> None:
    users = [
        b.emply_user("u-1", username="a", email="anna@contoso.com"),
        b.emply_user("u-2", username="b", email="ANNA@contoso.com"),
    ]
    plan = b.run(staff(ANNA), users, b.settings(MAP))
    assert plan.changes == ()
    assert [e.reason for e in plan.errors] == [model.AMBIGUOUS_MATCH]
    assert "u-1, u-2" in plan.errors[0].message


def test_a_shared_e_mail_is_reported_as_a_tie_naming_both_and_nothing_is_created() -> None:
    """FAQ: "If a user has the same username or the same e-mail it will automatically
    connect to Microsoft Entra ID's user." R3 sharpened: two Emply users may share an
    e-mail (a rehire: the old account kept, a new one made); the Entra user with that
    e-mail then connects to neither, the run reports the tie naming both, and no third
    user is created with that e-mail."""
    old = b.emply_user("u-anna-2019", username="anna.berg.2019", email="anna@contoso.com",
                       status="deactivated", deactivated_by="emply")
    new = b.emply_user("u-anna", username="anna.b", email="Anna@Contoso.com ")
    plan = b.run(staff(ANNA), [old, new], b.settings(MAP))
    assert plan.changes == ()
    (problem,) = plan.errors
    assert problem.reason == model.AMBIGUOUS_MATCH and problem.entra_id == "anna"
    assert "u-anna, u-anna-2019" in problem.message
    assert set(problem.candidates) == {"u-anna", "u-anna-2019"}


def test_external_users_not_in_entra_are_never_touched() -> None:
    external = b.emply_user("u-ext", username="consultant@partner.com", status="active")
    plan = b.run(staff(BO), [external], b.settings(MAP))
    assert all(c.user_id != "u-ext" for c in plan.changes)


# --- R4 creation and employees ("Why is there an error in synchronization of users?") --


def test_employee_without_account_blocks_creation_with_an_error() -> None:
    employee = model.Employee("e-anna", "ANNA@contoso.com")
    plan = b.run(staff(ANNA), [], b.settings(MAP), employees=(employee,))
    assert plan.changes == ()
    (error,) = plan.errors
    assert (error.reason, error.entra_id) == (model.EMPLOYEE_WITHOUT_ACCOUNT, "anna")
    assert "create an account for the employee first" in error.message


def test_employee_with_account_and_identical_email_connects_automatically() -> None:
    employee = model.Employee("e-anna", "anna@contoso.com")
    account = b.emply_user("u-anna", username="anna", email="anna@contoso.com",
                           employee_id="e-anna")
    plan = b.run(staff(ANNA), [account], b.settings(MAP), employees=(employee,))
    assert b.kinds(plan) == [(model.LINK_USER, "u-anna", model.LINKED_BY_EMAIL)]


def test_created_user_takes_upn_mail_name_and_source_entra() -> None:
    plan = b.run(staff(ANNA), [], b.settings(MAP))
    after = plan.changes[0].after
    assert (after["username"], after["email"], after["source"], after["status"]) == (
        "Anna.Berg@contoso.com", "anna@contoso.com", "entra", "active"
    )


# --- R5 one-way data ------------------------------------------------------------------


def test_changes_to_entra_name_mail_or_upn_are_not_copied_to_emply() -> None:
    renamed = b.entra_user("anna", "anna.new@contoso.com", mail="new@contoso.com", name="New")
    user = linked("anna", username="Anna.Berg@contoso.com", email="anna@contoso.com")
    plan = b.run(staff(renamed), [user], b.settings(MAP))
    assert plan.changes == ()


# --- R6 deactivation ("Why are users in Emply being deactivated?") --------------------


@pytest.mark.parametrize(
    ("entra", "user", "cfg", "reason"),
    [
        pytest.param(staff(BO), linked("anna"), b.settings(MAP),
                     model.DELETED_IN_ENTRA, id="deleted in Entra"),
        pytest.param(staff(BO, b.entra_user("anna", enabled=False)), linked("anna"),
                     b.settings(MAP), model.DISABLED_IN_ENTRA, id="disabled"),
        pytest.param(staff(BO, b.entra_user("anna", "anna@fabrikam.com")), linked("anna"),
                     b.settings(MAP, allowed_domains=("contoso.com",)),
                     model.DOMAIN_CHANGED, id="the user domain has been changed"),
        pytest.param(b.tenant([ANNA, BO], {"grp-staff": ["bo"]}), linked("anna"),
                     b.settings(MAP), model.REMOVED_FROM_GROUPS,
                     id="moved out of the connected group"),
        pytest.param(b.tenant([ANNA, BO], {"grp-new": ["bo"]}),
                     linked("anna", sync_groups=["grp-staff"]),
                     b.settings({"grp-new": "employee"}), model.GROUP_REMOVED,
                     id="the connected group is shut down (deleted)"),
        pytest.param(staff(ANNA, BO), linked("anna", link_tenant_id="old-tenant",
                                             username="gone@old.com", email="gone@old.com"),
                     b.settings(MAP), model.TENANT_CHANGED, id="the tenant has changed"),
    ],
)
def test_deactivation_reasons_in_order(
    entra: model.EntraSnapshot, user: model.EmplyUser, cfg: model.Settings, reason: str
) -> None:
    entra, others = with_bystanders(entra, cfg)
    plan = b.run(entra, [user, *others], cfg)
    mine = [c for c in plan.changes if c.user_id == user.id]
    assert [(c.kind, c.reason) for c in mine] == [(model.DEACTIVATE_USER, reason)]
    assert mine[0].after["deactivatedBy"] == "sync"
    assert mine[0].message


def test_deleted_and_disabled_take_precedence_over_group_removal() -> None:
    entra, others = with_bystanders(
        b.tenant([b.entra_user("anna", enabled=False)], {"grp-staff": []}), b.settings(MAP)
    )
    plan = b.run(entra, [linked("anna"), *others], b.settings(MAP))
    assert [c.reason for c in plan.changes if c.user_id == "u-anna"] == [
        model.DISABLED_IN_ENTRA
    ]


def test_sync_deactivated_user_is_reactivated_when_back_in_scope() -> None:
    user = linked("anna", status="deactivated", deactivated_by="sync",
                  deactivation_reason=model.REMOVED_FROM_GROUPS)
    plan = b.run(staff(ANNA), [user], b.settings(MAP))
    assert b.kinds(plan) == [(model.REACTIVATE_USER, "u-anna", model.REACTIVATE_USER)]


def test_user_deactivated_in_emply_stays_deactivated() -> None:
    user = linked("anna", status="deactivated", deactivated_by="emply")
    plan = b.run(staff(ANNA), [user], b.settings(MAP))
    assert plan.changes == ()


def test_linked_user_stays_linked_across_upn_and_mail_change() -> None:
    moved = b.entra_user("anna", "anna.b@contoso.com", mail="ab@contoso.com")
    plan = b.run(staff(moved), [linked("anna", username="Anna.Berg@contoso.com")],
                 b.settings(MAP))
    assert plan.changes == ()


def test_tenant_change_relinks_users_that_match_in_the_new_tenant() -> None:
    user = linked("old-anna", link_tenant_id="old-tenant", username="Anna.Berg@contoso.com")
    plan = b.run(staff(ANNA), [user], b.settings(MAP))
    (link,) = plan.changes
    assert (link.kind, link.after["entraId"], link.after["tenantId"]) == (
        model.LINK_USER, "anna", b.TENANT
    )


# --- R12 removal from one group of several ------------------------------------------


def test_removal_from_one_group_while_in_another_changes_no_status() -> None:
    entra = b.tenant([ANNA], {"grp-staff": [], "grp-hr": ["anna"]})
    user = linked("anna", sync_groups=["grp-staff", "grp-hr"], roles=["employee", "hr"])
    plan = b.run(entra, [user], b.settings({"grp-staff": "employee", "grp-hr": "hr"}))
    assert [c.kind for c in plan.changes] == []
    assert [(k.user_id, k.fields) for k in plan.bookkeeping] == [("u-anna", {
        "linkedDomain": "contoso.com", "syncGroups": ["grp-hr"], "roleBasis": {"grp-hr": "hr"},
    })]


def test_removal_from_all_groups_deactivates() -> None:
    """FAQ: "It is deactivated in Emply and can be found under deactivated users"."""
    entra_users, users = many_linked(10)
    entra = b.tenant([ANNA, *entra_users], {"grp-staff": [u.id for u in entra_users]})
    plan = b.run(entra, [linked("anna"), *users], b.settings(MAP))
    assert b.kinds(plan) == [(model.DEACTIVATE_USER, "u-anna", model.REMOVED_FROM_GROUPS)]


# --- R7 safety: the deactivation guard ------------------------------------------------


def test_guard_holds_a_run_that_would_deactivate_60_percent() -> None:
    entra_users, users = many_linked(10)
    entra = b.tenant(entra_users, {"grp-staff": [u.id for u in entra_users[:4]]})
    plan = b.run(entra, users, b.settings(MAP, guard=(50, 20, 5)))
    assert plan.status == "needs_approval"
    assert len(plan.held) == 6
    assert not [c for c in plan.changes if c.kind == model.DEACTIVATE_USER]
    assert model.HELD_BY_GUARD in [e.reason for e in plan.errors]

    wrong = b.run(entra, users, b.settings(MAP, guard=(50, 20, 5)), approve=5)
    assert wrong.status == "needs_approval"
    assert model.APPROVAL_MISMATCH in [e.reason for e in wrong.errors]

    approved = b.run(entra, users, b.settings(MAP, guard=(50, 20, 5)), approve=6)
    assert approved.status == "succeeded"
    assert {c.user_id for c in approved.changes if c.kind == model.DEACTIVATE_USER} == {
        c.user_id for c in plan.held
    }


def test_guard_max_count() -> None:
    entra_users, users = many_linked(100)
    entra = b.tenant(entra_users, {"grp-staff": [u.id for u in entra_users[5:]]})
    plan = b.run(entra, users, b.settings(MAP, guard=(3, 50)))
    assert len(plan.held) == 5


def test_deleted_configured_group_hitting_many_users_is_stopped_by_the_guard() -> None:
    entra_users, users = many_linked(10)
    plan = b.run(b.tenant(entra_users, {}), users, b.settings(MAP))
    assert plan.status == "needs_approval"
    assert {c.reason for c in plan.held} == {model.GROUP_REMOVED}
    assert model.GROUP_NOT_FOUND in [e.reason for e in plan.errors]


def test_tenant_change_hitting_many_users_is_stopped_by_the_guard() -> None:
    _, users = many_linked(10)
    new_tenant = "22222222-2222-2222-2222-222222222222"
    entra = b.tenant([], {"grp-staff": []}, tenant_id=new_tenant)
    plan = b.run(entra, users, b.settings(MAP, tenant_id=new_tenant))
    assert plan.status == "needs_approval"
    assert {c.reason for c in plan.held} == {model.TENANT_CHANGED}


# --- R8 employees ("I have deleted a user in Entra, but the user still exists under
# 'Active'") --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resignation", "status", "expected"),
    [
        (None, "active", None),
        (dt.date(2026, 12, 31), "active", "pending"),
        (dt.date(2026, 11, 26), "pending", "archived"),  # reached today (UTC)
        (dt.date(2026, 1, 1), "active", "archived"),
        (dt.date(2026, 12, 31), "pending", None),
    ],
)
def test_employee_status_follows_resignation_date(
    resignation: dt.date | None, status: str, expected: str | None
) -> None:
    employee = model.Employee("e-1", "e1@contoso.com", status, resignation)
    plan = b.run(b.tenant([], {"grp-staff": []}), [], b.settings(MAP), employees=(employee,))
    got = [c.after["status"] for c in plan.changes if c.employee_id == "e-1"]
    assert got == ([expected] if expected else [])


def test_deleting_the_entra_user_never_changes_the_employee() -> None:
    employee = model.Employee("e-anna", "anna@contoso.com")
    user = linked("anna", employee_id="e-anna")
    entra, others = with_bystanders(staff(BO), b.settings(MAP))
    plan = b.run(entra, [user, *others], b.settings(MAP), employees=(employee,))
    assert [c.kind for c in plan.changes if c.user_id == "u-anna"] == [model.DEACTIVATE_USER]
    assert not [c for c in plan.changes if c.kind == model.EMPLOYEE_STATUS]


# --- R17 integration removed -------------------------------------------------------------


def test_disabled_integration_creates_and_deactivates_nobody() -> None:
    cfg = b.settings(MAP, enabled=False)
    entra, others = with_bystanders(staff(ANNA), cfg)
    users = [linked("bo"), *others]
    enabled = b.run(entra, users, b.settings(MAP))
    assert {c.kind for c in enabled.changes} == {model.CREATE_USER, model.DEACTIVATE_USER}
    plan = b.run(entra, users, cfg)
    assert plan.changes == () and plan.held == ()


# --- R3 with several Entra users competing for one Emply user ---------------------------


def test_the_earliest_step_wins_whatever_the_order_of_entra_ids() -> None:
    by_mail = b.entra_user("a-id", "alice@contoso.com", mail="shared@contoso.com")
    by_name = b.entra_user("b-id", "shared@contoso.com", mail="bob@contoso.com")
    user = b.emply_user("u1", username="shared@contoso.com", email="shared@contoso.com")
    plan = b.run(staff(by_mail, by_name), [user], b.settings(MAP))
    assert [(c.kind, c.user_id, c.entra_id) for c in plan.changes if c.kind != "set_roles"] == [
        (model.LINK_USER, "u1", "b-id"),
    ]
    # a-id is not matched (u1 went to the earlier step), and u1 holds its mail: no second
    # user with that e-mail is created.
    assert [(e.reason, e.entra_id) for e in plan.errors] == [(model.EMAIL_TAKEN, "a-id")]


def test_two_entra_users_tied_on_one_emply_user_are_both_ambiguous() -> None:
    one = b.entra_user("a-id", "a@contoso.com", mail="team@contoso.com")
    two = b.entra_user("b-id", "b@contoso.com", mail="team@contoso.com")
    user = b.emply_user("u1", username="team", email="team@contoso.com")
    plan = b.run(staff(one, two), [user], b.settings(MAP))
    assert plan.changes == ()
    assert [(e.reason, e.entra_id, e.candidates) for e in plan.errors] == [
        (model.AMBIGUOUS_MATCH, "a-id", ("u1",)),
        (model.AMBIGUOUS_MATCH, "b-id", ("u1",)),
    ]


def test_recreated_entra_account_with_the_same_upn_is_not_created_twice() -> None:
    """Issue 11: the old user is connected to the re-created account, not a second login."""
    new = b.entra_user("new-id", "anna.berg@contoso.com")
    old = linked("old-id", username="Anna.Berg@contoso.com")
    entra, others = with_bystanders(staff(new), b.settings(MAP))
    plan = b.run(entra, [old, *others], b.settings(MAP))
    assert [(c.kind, c.user_id, c.reason) for c in plan.changes] == [
        (model.LINK_USER, "u-old-id", model.ENTRA_ACCOUNT_REPLACED)
    ]
    assert plan.errors == ()


def test_user_deleted_in_emply_is_never_linked_again() -> None:
    gone = b.emply_user("u-old", username="old-name", email="anna@contoso.com", status="deleted")
    plan = b.run(staff(ANNA), [gone], b.settings(MAP))
    assert plan.changes == ()
    # It keeps its e-mail, as it keeps its username: no second user gets it.
    assert [(e.reason, e.entra_id) for e in plan.errors] == [(model.EMAIL_TAKEN, "anna")]


def test_missing_account_enabled_is_not_taken_for_disabled() -> None:
    from shared.graph.reader import USER_FIELDS
    from shared.reconcile import convert

    # Graph did not return accountEnabled: the reader keeps None in its place.
    values = {"id": "anna", "userPrincipalName": "a@contoso.com"}
    mirror = {"tenantId": b.TENANT, "users": {"anna": [values.get(f) for f in USER_FIELDS]},
              "groups": {}}
    assert convert.entra_snapshot(mirror).users["anna"].account_enabled is True


def test_an_unresolved_stronger_match_keeps_a_weaker_one_off_its_candidate() -> None:
    """Two users share p0's username (ambiguous at step 2); p2 matches one of them only by
    e-mail (step 3). p2 must not take it: the next run would otherwise link p0 differently."""
    p0 = b.entra_user("p0", "p0@contoso.com")
    p2 = b.entra_user("p2", "p2@contoso.com", mail="shared@contoso.com")
    users = [b.emply_user("u4", username="p0@contoso.com", email="p0@contoso.com"),
             b.emply_user("u5", username="p0@contoso.com", email="shared@contoso.com")]
    plan = b.run(staff(p0, p2), users, b.settings(MAP))
    assert plan.changes == ()  # nor is p2 created with u5's e-mail
    assert [(e.reason, e.entra_id) for e in plan.errors] == [
        (model.AMBIGUOUS_MATCH, "p0"), (model.EMAIL_TAKEN, "p2")]


def test_a_match_made_unique_by_another_link_is_made_in_the_same_run() -> None:
    """p2 takes u5 by username; that leaves u4 as p0's only e-mail match, as the next run
    would see it, so p0 is linked now rather than reported ambiguous."""
    p0 = b.entra_user("p0", "p0@contoso.com", mail="team@contoso.com")
    p2 = b.entra_user("p2", "p2@contoso.com", mail="p2@contoso.com")
    users = [b.emply_user("u4", username="x", email="team@contoso.com"),
             b.emply_user("u5", username="p2@contoso.com", email="team@contoso.com")]
    plan = b.run(staff(p0, p2), users, b.settings(MAP))
    links = {(c.user_id, c.after["entraId"]) for c in plan.changes if c.kind == model.LINK_USER}
    assert links == {("u5", "p2"), ("u4", "p0")}
    assert plan.errors == ()
