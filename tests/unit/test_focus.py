"""The planner with a focus (`shared.reconcile.focus`): an on-demand run's one-user view
looks at every Emply user and acts on that user alone."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.reconcile import focus, model, planner
from tests.unit import builders as b
from tests.unit import test_properties as props

MAP: dict[str, str | None] = {"grp-staff": "employee"}


def linked(uid: str, **kw: object) -> model.EmplyUser:
    return b.emply_user(uid, entra_id=f"{uid}-id", link_tenant_id=b.TENANT,
                        sync_groups=("grp-staff",), roles=("employee",), **kw)


def plan(entra: model.EntraSnapshot, users: list[model.EmplyUser], only: focus.Focus,
         cfg: model.Settings | None = None, state: model.SyncState | None = None,
         employees: tuple[model.Employee, ...] = ()) -> model.Plan:
    return planner.plan(entra, model.EmplySnapshot(tuple(users), employees, b.ROLES),
                        cfg or b.settings(MAP), state or model.SyncState(), b.NOW, only=only)


def test_the_users_missing_from_a_one_user_view_are_not_deactivated() -> None:
    users = [linked(f"u{i}") for i in range(5)]
    # u0's Entra user, read alone, is in no group any more; u1–u4 were not read.
    view = b.tenant([b.entra_user("u0-id", "u0@contoso.com")], {"grp-staff": []})
    result = plan(view, users, focus.Focus.of(["u0-id"], ["u0"]))
    assert b.kinds(result) == [("deactivate_user", "u0", "removed_from_groups")]


def test_the_guard_counts_every_linked_active_user_not_the_view() -> None:
    users = [linked(f"u{i}") for i in range(10)]
    view = b.tenant([b.entra_user("u0-id", "u0@contoso.com")], {"grp-staff": []})
    cfg = b.settings(MAP, guard=(50, 20, 1))  # from 1 deactivation on, more than 20 %
    result = plan(view, users, focus.Focus.of(["u0-id"], ["u0"]), cfg)
    assert not result.held  # 1 of 10: 10 %, not 100 % of a one-user view
    assert result.next_state.recent_deactivations == ((b.NOW, 1),)


def test_one_user_is_held_when_the_rolling_window_is_full() -> None:
    users = [linked(f"u{i}") for i in range(10)]
    view = b.tenant([b.entra_user("u0-id", "u0@contoso.com")], {"grp-staff": []})
    earlier = b.NOW - dt.timedelta(hours=3)
    state = model.SyncState(previous_mapping={"grp-staff": "hr"},
                            recent_deactivations=((earlier, 2),), held_digest="abcdefabcdef")
    cfg = b.settings(MAP, guard=(2, 100, 1))
    result = plan(view, users, focus.Focus.of(["u0-id"], ["u0"]), cfg, state)
    assert [c.user_id for c in result.held] == ["u0"] and result.status == "needs_approval"
    # The run-wide memory stays the last full run's: mapping and held set; the window too.
    assert result.next_state == state
    assert result.held_digest == model.held_digest(["u0"])


def test_a_new_hire_is_created_and_nobody_else_is_looked_after() -> None:
    users = [linked("u1", calendar_sync=True)]
    hire = b.entra_user("hire-id", "hire@contoso.com")
    view = b.tenant([hire], {"grp-staff": ["hire-id"]})
    result = plan(view, users, focus.Focus.of(["hire-id"], []))
    assert b.kinds(result) == [("create_user", "entra-hire-id", "create_user")]
    assert [k.user_id for k in result.bookkeeping] == []


def test_r4s_refusals_see_every_emply_user() -> None:
    holder = linked("u1", username="hire@contoso.com", email="other@contoso.com")
    hire = b.entra_user("hire-id", "hire@contoso.com")
    view = b.tenant([hire, b.entra_user("u1-id", "u1@contoso.com")],
                    {"grp-staff": ["hire-id"]})
    result = plan(view, [holder], focus.Focus.of(["hire-id"], []))
    assert result.changes == ()
    assert [p.reason for p in result.errors] == ["username_taken"]


def test_a_replaced_account_is_relinked_only_when_its_old_entra_user_is_gone() -> None:
    old = linked("u1", username="ann@contoso.com", email="ann@contoso.com")
    new = b.entra_user("new-id", "ann@contoso.com")
    gone = b.tenant([new], {"grp-staff": ["new-id"]})
    relinked = plan(gone, [old], focus.Focus.of(["new-id"], []))
    assert b.kinds(relinked) == [("link_user", "u1", "entra_account_replaced")]
    # Its old Entra user read and found to exist: u1 is no candidate, the UPN is taken.
    there = b.tenant([new, b.entra_user("u1-id", "u1@contoso.com")], {"grp-staff": ["new-id"]})
    refused = plan(there, [old], focus.Focus.of(["new-id"], []))
    assert refused.changes == () and [p.reason for p in refused.errors] == ["username_taken"]


# -- the one user's answer is the full run's (FAQ words) -----------------------------

ANN = model.Employee("e-ann", "ann@contoso.com")
ANN_OLD = b.emply_user("u-ann", username="ann.lee@contoso.com", employee_id="e-ann",
                       entra_id="ann-old-id", link_tenant_id="old-tenant")
ANN_SECOND = b.emply_user("u-ann-2", username="ann.lee2@contoso.com", employee_id="e-ann",
                          status="deactivated", deactivated_by="emply")
ANN_NEW = b.entra_user("ann-new-id", "ann@contoso.com")
NIA = b.entra_user("a-id", "nia.hale@contoso.com", mail="hires@contoso.com")
NOOR = b.entra_user("b-id", "noor.khan@contoso.com", mail="hires@contoso.com")
TIE = [("ambiguous_match", ("u-ann", "u-ann-2"))]

# (the view, the Emply users, the Entra user asked about, what both plan for it, errors)
CASES = [
    # "The Microsoft Entra ID Tenant has changed", but "Emply files user and employee
    # connected to an e-mail address" and Ann's profile has two accounts: Ann of the new
    # tenant matches both by the profile's e-mail (R3 step 4), a tie: no change (not R6's
    # tenant_changed) and ambiguous_match, whichever Entra user is asked about.
    pytest.param(b.tenant([ANN_NEW], {"grp-staff": ["ann-new-id"]}), [ANN_OLD, ANN_SECOND],
                 "ann-old-id", [], TIE, id="tenant changed, profile with two accounts"),
    pytest.param(b.tenant([ANN_NEW], {"grp-staff": ["ann-new-id"]}), [ANN_OLD, ANN_SECOND],
                 "ann-new-id", [], TIE, id="the new tenant's account of that profile"),
    # The same with the old link's Entra id still there, disabled and in the group.
    pytest.param(b.tenant([ANN_NEW, b.entra_user("ann-old-id", "ann.lee@contoso.com",
                                                 enabled=False)],
                          {"grp-staff": ["ann-new-id", "ann-old-id"]}),
                 [ANN_OLD, ANN_SECOND], "ann-old-id", [], TIE,
                 id="tenant changed, the old account disabled"),
    # R3: the sync never creates a user whose e-mail another user has. Two new hires
    # share a mail: the first (by object id) is created, the second refused, whichever
    # of them is asked about.
    pytest.param(b.tenant([NIA, NOOR], {"grp-staff": ["a-id", "b-id"]}), [], "a-id",
                 [("create_user", "entra-a-id", "create_user")], [],
                 id="two new hires of one mail, the first"),
    pytest.param(b.tenant([NIA, NOOR], {"grp-staff": ["a-id", "b-id"]}), [], "b-id",
                 [], [("email_taken", ())], id="two new hires of one mail, the second"),
]


@pytest.mark.parametrize(("view", "users", "asked_about", "planned", "errors"), CASES)
def test_one_user_gets_the_answer_a_full_run_gives_for_it(
        view: model.EntraSnapshot, users: list[model.EmplyUser], asked_about: str,
        planned: list[tuple[str, str, str]],
        errors: list[tuple[str, tuple[str, ...]]]) -> None:
    asked = plan(view, users, focus.Focus.of([asked_about], []), employees=(ANN,))
    full = b.run(view, users, b.settings(MAP), employees=(ANN,))
    for result in (asked, full):
        concerning = [c for c in result.changes if c.entra_id == asked_about
                      or any(u.id == c.user_id and u.entra_id == asked_about for u in users)]
        assert b.kinds(dataclasses.replace(result, changes=tuple(concerning))) == planned
        assert not result.held
    assert b.kinds(asked) == planned
    assert [(p.reason, p.candidates) for p in asked.errors] == errors


def test_a_hire_refused_for_a_mail_a_full_run_gives_first_to_another_says_so() -> None:
    """Asked about the second of two new hires of one mail, the answer names the first."""
    asked = plan(b.tenant([NIA, NOOR], {"grp-staff": ["a-id", "b-id"]}), [],
                 focus.Focus.of(["b-id"], []))
    assert [p.entra_id for p in asked.errors] == ["b-id"]
    assert "nia.hale@contoso.com has this e-mail too" in asked.errors[0].message


def test_a_leaver_held_alone_is_deactivated_by_the_full_run_that_also_creates_a_hire() -> None:
    """R7: a leaver removed from every group (FAQ: "It is deactivated in Emply"), asked
    about alone, is 1 of 1 linked active users: held. The full run also creates a new
    hire, so its base is 2 and 1 of 2 is not more than 50 %: it deactivates the leaver,
    for the same reason. Holding is the safe side; the deactivation is never lost."""
    leaver = linked("u-leaver")
    view = b.tenant([b.entra_user("u-leaver-id", "u-leaver@contoso.com"),
                     b.entra_user("hire-id", "hire@contoso.com")],
                    {"grp-staff": ["hire-id"]})
    cfg = b.settings(MAP, guard=(1, 50, 0))
    asked = plan(view, [leaver], focus.Focus.of(["u-leaver-id"], []), cfg)
    assert asked.changes == ()
    assert [(c.user_id, c.reason) for c in asked.held] == [("u-leaver", "removed_from_groups")]
    full = b.run(view, [leaver], cfg)
    assert not full.held
    assert ("deactivate_user", "u-leaver", "removed_from_groups") in b.kinds(full)


# -- properties over the generated worlds of test_properties -------------------------

PROPERTY_SETTINGS = settings(max_examples=300, deadline=None,
                             suppress_health_check=[HealthCheck.too_slow])


def _focused(world: Any, index: int) -> tuple[Any, focus.Focus, model.Plan]:
    entra, users, cfg = world
    ids = sorted(entra.users)
    only = focus.Focus.of([ids[index % len(ids)]], [])
    return world, only, planner.plan(
        entra, model.EmplySnapshot(tuple(users), props.EMPLOYEES, b.ROLES), cfg,
        model.SyncState(), b.NOW, only=only)


def _acted(plan_: model.Plan) -> set[str]:
    return {c.user_id for c in (*plan_.changes, *plan_.held) if c.user_id is not None}


@PROPERTY_SETTINGS
@given(props.worlds(), st.integers(0, 5))
def test_one_user_applied_then_a_full_run_plans_nothing_more_for_it(world: Any,
                                                                     index: int) -> None:
    """Across an on-demand run: what it applied for its user, a full run does not plan
    again; a deactivation it held is never lost: the full run holds it or makes it, for
    the same reason (it may make it: its R7 base also counts the users it creates)."""
    (entra, users, cfg), _only, focused = _focused(world, index)
    synced = props.apply_to(users, focused)
    full = b.run(entra, synced, cfg, employees=props.EMPLOYEES)
    applied = {c.user_id for c in focused.changes if c.user_id is not None}
    assert [c for c in full.changes if c.user_id in applied] == []
    deactivations = {c.user_id: c.reason for c in (*full.changes, *full.held)
                     if c.kind == model.DEACTIVATE_USER}
    held = {c.user_id: c.reason for c in focused.held}
    assert held.items() <= deactivations.items()


@PROPERTY_SETTINGS
@given(props.worlds(), st.integers(0, 5))
def test_one_users_plan_is_the_full_plan_for_that_user(world: Any, index: int) -> None:
    """With the whole directory in view, the focused plan's changes are the full plan's
    for the users it acts on, and it acts on nobody the focus does not concern."""
    (entra, users, cfg), only, focused = _focused(world, index)
    full = b.run(entra, users, cfg, employees=props.EMPLOYEES)
    acted = _acted(focused)
    linked_to_focus = {u.id for u in users if only.names(u)}
    made_for_focus = {c.user_id for c in focused.changes
                      if c.kind in (model.LINK_USER, model.CREATE_USER)}
    assert acted <= linked_to_focus | made_for_focus
    if not full.held and not focused.held:
        assert [c for c in full.changes if c.user_id in acted] == list(focused.changes)
