"""R9 update and R10, as the FAQ words them, planned purely.

FAQ: "The employee profile is in control of the data, and therefore overwrites changes
from Microsoft Entra ID. The updates can occur from Emply to Microsoft Entra ID."
FAQ (hybrid): "it can only synchronize data from Microsoft Entra ID to Emply. This means
that the three extra options (create, update, delete) are not possible to enable."
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from shared.reconcile import explain, model, planner, writeback
from tests.unit.builders import NOW, TENANT

RAY = "e-ray"
RAY_ENTRA = "a1"


def ray_entra(**fields: Any) -> model.EntraUser:
    base: dict[str, Any] = {
        "id": RAY_ENTRA, "user_principal_name": "ray.ross@contoso.com",
        "mail": "ray.ross@contoso.com", "display_name": "Ray Ross", "account_enabled": True,
        "given_name": "Ray", "surname": "Ross", "job_title": None, "department": None,
        "mobile_phone": None,
    }
    base.update(fields)
    return model.EntraUser(**base)


def ray_employee(**fields: Any) -> model.Employee:
    base: dict[str, Any] = {
        "id": RAY, "email": "ray.ross@contoso.com", "display_name": "Ray Ross",
        "given_name": "Ray", "surname": "Ross",
    }
    base.update(fields)
    return model.Employee(**base)


def world(
    entra_user: model.EntraUser,
    employee: model.Employee | None,
    *,
    options: tuple[str, ...] = ("update",),
    hybrid_tenant: bool = False,
    user_status: model.UserStatus = "active",
    enabled: bool = True,
) -> tuple[model.EntraSnapshot, model.EmplySnapshot, model.Settings]:
    entra = model.EntraSnapshot(
        tenant_id=TENANT, users={entra_user.id: entra_user},
        groups={"g-emp": model.EntraGroup("g-emp", "Employee", frozenset({entra_user.id}))},
        on_premises_sync_enabled=hybrid_tenant, verified_domains=("contoso.com",))
    user = model.EmplyUser(
        id="u-ray", username="ray.ross@contoso.com", email="ray.ross@contoso.com",
        status=user_status, roles=("employee",),
        employee_id=employee.id if employee is not None else None, entra_id=entra_user.id,
        link_tenant_id=TENANT, sync_groups=("g-emp",), linked_domain="contoso.com")
    emply = model.EmplySnapshot(users=(user,), employees=(employee,) if employee else (),
                                roles=(model.Role("employee", "Employee"),))
    settings = model.Settings(
        tenant_id=TENANT, groups=(model.GroupMapping("g-emp", "employee"),),
        default_role_id="employee", sync_roles=True, write_back=options, enabled=enabled)
    return entra, emply, settings


def run(entra: model.EntraSnapshot, emply: model.EmplySnapshot,
        settings: model.Settings) -> model.Plan:
    return planner.plan(entra, emply, settings, model.SyncState(), NOW)


def entra_changes(plan: model.Plan) -> list[model.Change]:
    return [c for c in plan.changes if c.kind in model.ENTRA_KINDS]


def reasons(plan: model.Plan) -> list[str]:
    return [p.reason for p in plan.errors]


# (case, Entra user's fields, employee's fields, expected before, expected after)
UPDATE_CASES = [
    ("a new job title in Emply is written to Entra",
     {}, {"job_title": "Engineer"}, {"jobTitle": None}, {"jobTitle": "Engineer"}),
    ("a name changed in Entra is overwritten back: Emply wins",
     {"display_name": "Raymond Ross", "given_name": "Raymond"}, {},
     {"displayName": "Raymond Ross", "givenName": "Raymond"},
     {"displayName": "Ray Ross", "givenName": "Ray"}),
    ("a field emptied in Emply clears it in Entra (null clears)",
     {"department": "Sales", "mobile_phone": "+45 1234"}, {},
     {"department": "Sales", "mobilePhone": "+45 1234"},
     {"department": None, "mobilePhone": None}),
    ("an empty string is null on both sides: nothing to write",
     {"department": None}, {"department": ""}, None, None),
    ("only the fields that differ are sent",
     {"job_title": "Engineer", "department": "R&D"}, {"job_title": "Engineer",
                                                     "department": "Sales"},
     {"department": "R&D"}, {"department": "Sales"}),
    ("displayName is never cleared (Entra requires it)",
     {}, {"display_name": None}, None, None),
    ("all the same: nothing is written",
     {"job_title": "HR partner"}, {"job_title": "HR partner"}, None, None),
]


@pytest.mark.parametrize(("case", "entra_fields", "employee_fields", "before", "after"),
                         UPDATE_CASES, ids=[c[0] for c in UPDATE_CASES])
def test_update_patches_only_what_differs(
    case: str, entra_fields: dict[str, Any], employee_fields: dict[str, Any],
    before: dict[str, Any] | None, after: dict[str, Any] | None,
) -> None:
    plan = run(*world(ray_entra(**entra_fields), ray_employee(**employee_fields)))
    changes = entra_changes(plan)
    if after is None:
        assert changes == []
        return
    (change,) = changes
    assert (change.kind, change.rule, change.user_id, change.entra_id) == (
        model.ENTRA_UPDATE, "R9", "u-ray", RAY_ENTRA)
    assert dict(change.before) == before and dict(change.after) == after


def test_after_the_write_the_plan_is_empty_no_ping_pong() -> None:
    """Applying the change to Entra (what Graph does) and planning again gives nothing,
    and nothing flows back to Emply (R5): the Emply user is not among the changes."""
    entra, emply, settings = world(ray_entra(display_name="Raymond"),
                                   ray_employee(job_title="Engineer"))
    (change,) = entra_changes(run(entra, emply, settings))
    fields = {attr: change.after[prop] for attr, prop in writeback.FIELDS
              if prop in change.after}
    patched = dataclasses.replace(entra.users[RAY_ENTRA], **fields)
    again = run(dataclasses.replace(entra, users={RAY_ENTRA: patched}), emply, settings)
    assert entra_changes(again) == [] and again.changes == ()


# (case, options, hybrid tenant, hybrid user, user status, enabled, expected reasons,
#  expected entra_update count)
TOGGLE_CASES = [
    ("update off: nothing is written", (), False, False, "active", True, [], 0),
    ("create and delete alone do not update", ("create", "delete"), False, False, "active",
     True, [], 0),
    ("hybrid tenant: no write-back, hybrid_tenant reported", ("update",), True, False,
     "active", True, [model.HYBRID_TENANT], 0),
    ("hybrid user in a cloud tenant: never written (hybrid_user)", ("update",), False, True,
     "active", True, [model.HYBRID_USER], 0),
    ("a user deleted in Emply is not updated", ("update",), False, False, "deleted", True,
     [], 0),
    ("integration off (R17): no write-back", ("update",), False, False, "active", False, [],
     0),
    ("a deactivated user with a profile is still written", ("update",), False, False,
     "deactivated", True, [], 1),
]


@pytest.mark.parametrize(
    ("case", "options", "hybrid_tenant", "hybrid_user", "status", "enabled", "expected",
     "updates"),
    TOGGLE_CASES, ids=[c[0] for c in TOGGLE_CASES])
def test_toggles_and_hybrid(
    case: str, options: tuple[str, ...], hybrid_tenant: bool, hybrid_user: bool,
    status: model.UserStatus, enabled: bool, expected: list[str], updates: int,
) -> None:
    plan = run(*world(ray_entra(on_premises_sync_enabled=hybrid_user or None),
                      ray_employee(job_title="Engineer"), options=options,
                      hybrid_tenant=hybrid_tenant, user_status=status, enabled=enabled))
    assert len(entra_changes(plan)) == updates
    assert [r for r in reasons(plan) if r != model.GROUP_NOT_FOUND] == expected


def test_no_employee_profile_nothing_written() -> None:
    plan = run(*world(ray_entra(job_title="Engineer"), None))
    assert entra_changes(plan) == []


def test_a_link_of_another_tenant_is_not_written() -> None:
    entra, emply, settings = world(ray_entra(), ray_employee(job_title="Engineer"))
    stale = dataclasses.replace(emply.users[0], link_tenant_id="other-tenant")
    changes = writeback.plan_writeback(entra, dataclasses.replace(emply, users=(stale,)),
                                       settings).changes
    assert changes == ()


def test_the_hybrid_user_problem_names_the_user_and_the_reason() -> None:
    plan = run(*world(ray_entra(on_premises_sync_enabled=True),
                      ray_employee(job_title="Engineer")))
    (problem,) = [p for p in plan.errors if p.reason == model.HYBRID_USER]
    assert (problem.user_id, problem.entra_id, problem.rule) == ("u-ray", RAY_ENTRA, "R10")
    assert "on-premises" in problem.message


EXPLAIN_CASES = [
    ("written back at the next run", {}, False, ("update",), "written back to Entra at the "
     "next run", "The updates can occur from Emply to Microsoft Entra ID."),
    ("already written", {"job_title": "Engineer"}, False, ("update",),
     "Entra already has", "The updates can occur from Emply to Microsoft Entra ID."),
    ("hybrid user", {"on_premises_sync_enabled": True}, False, ("update",), "hybrid_user",
     "MS does not allow transfer to Microsoft Entra ID."),
    ("hybrid tenant", {}, True, ("update",), "hybrid_tenant",
     "are not possible to enable."),
    ("option off", {}, False, (), "writeBack.update is off", None),
]


@pytest.mark.parametrize(("case", "entra_fields", "hybrid_tenant", "options", "why", "faq"),
                         EXPLAIN_CASES, ids=[c[0] for c in EXPLAIN_CASES])
def test_explain_says_why_it_was_or_was_not_written_back(
    case: str, entra_fields: dict[str, Any], hybrid_tenant: bool, options: tuple[str, ...],
    why: str, faq: str | None,
) -> None:
    entra, emply, settings = world(ray_entra(**entra_fields),
                                   ray_employee(job_title="Engineer"), options=options,
                                   hybrid_tenant=hybrid_tenant)
    plan = run(entra, emply, settings)
    docs = {"u-ray": {"id": "u-ray", "username": "ray.ross@contoso.com",
                      "email": "ray.ross@contoso.com", "employeeId": RAY,
                      "entraId": RAY_ENTRA, "status": "active"}}
    result = explain.explain("u-ray", entra, emply, docs, settings, plan, NOW)
    assert any(why in sentence for sentence in result["why"]), result["why"]
    answers = [a["answer"] for a in result["faq"]]
    if faq is not None:
        assert any(faq in a for a in answers), answers
    if case == "written back at the next run":
        assert [c["kind"] for c in result["nextRun"]["changes"]] == [model.ENTRA_UPDATE]


def test_a_user_linked_in_this_run_is_written_back_in_the_same_run() -> None:
    entra, emply, settings = world(ray_entra(), ray_employee(job_title="Engineer"))
    unlinked = dataclasses.replace(emply.users[0], entra_id=None, link_tenant_id=None)
    plan = run(entra, dataclasses.replace(emply, users=(unlinked,)), settings)
    assert [c.kind for c in plan.changes if c.user_id == "u-ray"] == [
        model.LINK_USER, model.ENTRA_UPDATE]


# --- R9 delete: "the Microsoft Entra ID user is moved to deleted users" ------------------


DEFAULT_GUARD = model.DeactivationGuard()


def deleted_world(n: int, *, options: tuple[str, ...] = ("delete",), hybrid: bool = False,
                  guard: model.DeactivationGuard = DEFAULT_GUARD
                  ) -> tuple[model.EntraSnapshot, model.EmplySnapshot, model.Settings]:
    """20 linked active users, of whom the first `n` are deleted in Emply."""
    people = [ray_entra(id=f"a{i}", user_principal_name=f"p{i}@contoso.com",
                        mail=f"p{i}@contoso.com", on_premises_sync_enabled=hybrid or None)
              for i in range(20)]
    entra = model.EntraSnapshot(
        tenant_id=TENANT, users={p.id: p for p in people},
        groups={"g-emp": model.EntraGroup("g-emp", "Employee",
                                          frozenset(p.id for p in people))})
    users = tuple(model.EmplyUser(
        id=f"u{i}", username=f"p{i}@contoso.com", email=f"p{i}@contoso.com",
        status="deleted" if i < n else "active", roles=("employee",), entra_id=f"a{i}",
        link_tenant_id=TENANT, sync_groups=("g-emp",), linked_domain="contoso.com")
        for i in range(20))
    settings = model.Settings(
        tenant_id=TENANT, groups=(model.GroupMapping("g-emp", "employee"),),
        default_role_id="employee", sync_roles=True, write_back=options, guard=guard)
    return entra, model.EmplySnapshot(users=users, roles=(model.Role("employee", "E"),)), \
        settings


DELETE_CASES = [
    ("delete on: the Entra user of a deleted Emply user is deleted", ("delete",), False, 1,
     1, []),
    ("delete off: nothing is deleted", ("update",), False, 1, 0, []),
    ("a hybrid user is never deleted", ("delete",), True, 1, 0, [model.HYBRID_USER]),
]


@pytest.mark.parametrize(("case", "options", "hybrid", "deleted", "expected", "problems"),
                         DELETE_CASES, ids=[c[0] for c in DELETE_CASES])
def test_delete(case: str, options: tuple[str, ...], hybrid: bool, deleted: int,
                expected: int, problems: list[str]) -> None:
    plan = run(*deleted_world(deleted, options=options, hybrid=hybrid))
    deletions = [c for c in plan.changes if c.kind == model.ENTRA_DELETE]
    assert len(deletions) == expected
    assert reasons(plan) == problems
    for change in deletions:
        assert (change.user_id, change.entra_id, change.rule) == ("u0", "a0", "R9")
        assert change.before["userPrincipalName"] == "p0@contoso.com"
        assert "restorable there for 30 days" in change.message


def test_the_guard_holds_mass_deletions_and_only_an_exact_approval_releases_them() -> None:
    guard = model.DeactivationGuard(max_count=50, max_percent=20, min_count=3)
    entra, emply, settings = deleted_world(5, guard=guard)
    held = run(entra, emply, settings)
    assert held.status == "needs_approval"
    assert [c.kind for c in held.held] == [model.ENTRA_DELETE] * 5
    assert not [c for c in held.changes if c.kind == model.ENTRA_DELETE]
    digest = held.held_deletions_digest
    assert digest is not None and f"--approve-deletions 5:{digest}" in " ".join(
        p.message for p in held.errors if p.reason == model.HELD_BY_GUARD)

    for wrong in (model.Approval(count=5), model.Approval(4, digest),
                  model.Approval(5, "0" * 12)):
        refused = planner.plan(entra, emply, settings, model.SyncState(), NOW,
                               approve_deletions=wrong)
        assert refused.held and model.APPROVAL_MISMATCH in reasons(refused), wrong
    approved = planner.plan(entra, emply, settings, model.SyncState(), NOW,
                            approve_deletions=model.Approval(5, digest))
    assert not approved.held
    assert len([c for c in approved.changes if c.kind == model.ENTRA_DELETE]) == 5
    # A deactivation approval does not approve deletions.
    other = planner.plan(entra, emply, settings, model.SyncState(), NOW,
                         approve_deactivations=model.Approval(5, digest))
    assert [c.kind for c in other.held] == [model.ENTRA_DELETE] * 5


def test_below_the_guard_deletions_go_ahead() -> None:
    plan = run(*deleted_world(2))
    assert not plan.held
    assert len([c for c in plan.changes if c.kind == model.ENTRA_DELETE]) == 2


def test_an_approval_of_deletions_when_none_are_held_is_reported_unused() -> None:
    entra, emply, settings = deleted_world(2)
    plan = planner.plan(entra, emply, settings, model.SyncState(), NOW,
                        approve_deletions=model.Approval(2, "0" * 12))
    assert reasons(plan) == ["approval_unused"]
    assert len([c for c in plan.changes if c.kind == model.ENTRA_DELETE]) == 2


def test_explain_a_deleted_user_quotes_the_faq_on_deletion() -> None:
    entra, emply, settings = deleted_world(1)
    plan = run(entra, emply, settings)
    docs = {u.id: {"id": u.id, "username": u.username, "email": u.email,
                   "entraId": u.entra_id, "status": u.status} for u in emply.users}
    result = explain.explain("u0", entra, emply, docs, settings, plan, NOW)
    assert any("its Entra user is deleted by the next run" in w for w in result["why"])
    assert any("moved to deleted users" in a["answer"] for a in result["faq"])
