"""The planner with a focus (`shared.reconcile.focus`): an on-demand run's one-user view
looks at every Emply user and acts on that user alone."""

from __future__ import annotations

import datetime as dt
from typing import Any

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
         ) -> model.Plan:
    return planner.plan(entra, model.EmplySnapshot(tuple(users), (), b.ROLES),
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
    again. A deactivation it held, the full run holds too, unless the full run's guard
    counts more linked active users: those it creates, links or reactivates for others,
    which the on-demand run did not act on. Then it may apply that deactivation."""
    (entra, users, cfg), _only, focused = _focused(world, index)
    synced = props.apply_to(users, focused)
    full = b.run(entra, synced, cfg, employees=props.EMPLOYEES)
    applied = {c.user_id for c in focused.changes if c.user_id is not None}
    assert [c for c in full.changes if c.user_id in applied] == []
    gains = [c for c in full.changes if c.kind in (
        model.CREATE_USER, model.LINK_USER, model.REACTIVATE_USER)]
    for user_id in {c.user_id for c in focused.held} - {c.user_id for c in full.held}:
        assert gains, f"{user_id}: held on demand, not by a full run that gains no one"
        assert [c.kind for c in full.changes if c.user_id == user_id] == [
            model.DEACTIVATE_USER]


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
