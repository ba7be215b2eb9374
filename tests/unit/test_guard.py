"""R7's guard: approvals bound to the held set, and a rolling window over runs (issue 17)."""

from __future__ import annotations

import datetime as dt

import pytest

from shared.reconcile import model, planner
from tests.unit import builders as b

STAFF = "grp-staff"
GUARD = (50, 20, 10)
FRESH = model.SyncState()


def world(n: int, leaving: range) -> tuple[model.EntraSnapshot, list[model.EmplyUser]]:
    people = [b.entra_user(f"p{i}") for i in range(n)]
    users = [b.emply_user(f"u{i}", entra_id=f"p{i}", link_tenant_id=b.TENANT, roles=["employee"],
                          sync_groups=(STAFF,), linked_domain="contoso.com",
                          role_basis={STAFF: "employee"}) for i in range(n)]
    staying = [p.id for i, p in enumerate(people) if i not in leaving]
    return b.tenant(people, {STAFF: staying}), users


def run(entra: model.EntraSnapshot, users: list[model.EmplyUser], *,
        state: model.SyncState = FRESH,
        approve: model.Approval | int | None = None,
        now: dt.datetime = b.NOW) -> model.Plan:
    return planner.plan(entra, model.EmplySnapshot(tuple(users), (), b.ROLES),
                        b.settings({STAFF: "employee"}, guard=GUARD), state, now,
                        approve_deactivations=approve)


def deactivated(plan: model.Plan) -> set[str | None]:
    return {c.user_id for c in plan.changes if c.kind == model.DEACTIVATE_USER}


def test_the_held_set_has_a_digest_shown_with_the_approval_to_give() -> None:
    entra, users = world(40, range(0, 12))
    plan = run(entra, users)
    assert plan.status == "needs_approval" and plan.held_digest is not None
    assert plan.held_digest == model.held_digest(c.user_id for c in plan.held)
    held = next(e for e in plan.errors if e.reason == model.HELD_BY_GUARD)
    assert f"--approve-deactivations 12:{plan.held_digest}" in held.message
    assert plan.next_state.held_digest == plan.held_digest


@pytest.mark.parametrize("how", ["count and digest", "digest alone", "count of the shown set"])
def test_an_approval_of_the_set_shown_applies_exactly_it(how: str) -> None:
    entra, users = world(40, range(0, 12))
    held = run(entra, users)
    approval = {"count and digest": model.Approval(12, held.held_digest),
                "digest alone": model.Approval(None, held.held_digest),
                "count of the shown set": model.Approval(12)}[how]
    plan = run(entra, users, state=held.next_state, approve=approval)
    assert plan.status == "succeeded"
    assert deactivated(plan) == {c.user_id for c in held.held}


def test_the_same_count_for_other_users_is_approval_mismatch() -> None:
    """With 12 held, a tenant change that holds a different 12 is not approved by
    `--approve-deactivations 12`: the operator never saw those people."""
    entra, users = world(40, range(0, 12))
    shown = run(entra, users)
    other, _ = world(40, range(20, 32))
    for approval in (model.Approval(12), model.Approval(12, shown.held_digest),
                     model.Approval(None, shown.held_digest)):
        plan = run(other, users, state=shown.next_state, approve=approval)
        assert plan.status == "needs_approval", approval
        assert deactivated(plan) == set()
        mismatch = next(e for e in plan.errors if e.reason == model.APPROVAL_MISMATCH)
        assert "other users than those shown" in mismatch.message


def test_a_wrong_count_is_approval_mismatch() -> None:
    entra, users = world(40, range(0, 12))
    plan = run(entra, users, approve=11)
    assert plan.status == "needs_approval"
    assert model.APPROVAL_MISMATCH in [e.reason for e in plan.errors]


def test_six_runs_of_leavers_cannot_deactivate_many_users_unapproved() -> None:
    """A guard that looked at one run only let six runs of 9 leavers (each under minCount)
    deactivate 54 of 100 users; within 24 h they add up."""
    state = model.SyncState()
    entra, users = world(100, range(0))
    gone: set[str | None] = set()
    now = b.NOW
    for step in range(6):
        entra, _ = world(100, range(0, 9 * (step + 1)))
        plan = run(entra, users, state=state, now=now)
        gone |= deactivated(plan)
        users = [b.emply_user(u.id, entra_id=u.entra_id, link_tenant_id=b.TENANT,
                              roles=["employee"], sync_groups=u.sync_groups,
                              linked_domain="contoso.com", role_basis=u.role_basis,
                              status="deactivated" if u.id in gone else "active",
                              deactivated_by="sync" if u.id in gone else None)
                 for u in users]
        state = plan.next_state
        now += dt.timedelta(minutes=30)
        if plan.status == "needs_approval":
            break
    assert plan.status == "needs_approval"
    assert len(gone) < 20  # 9 applied, then 9 more would be 18 % of 100: applied; 27 held
    assert plan.next_state.recent_deactivations == state.recent_deactivations


def test_the_window_forgets_runs_older_than_24_hours() -> None:
    entra, users = world(100, range(0, 9))
    yesterday = b.NOW - dt.timedelta(hours=25)
    state = model.SyncState(recent_deactivations=((yesterday, 45),))
    plan = run(entra, users, state=state)
    assert plan.status == "succeeded" and len(deactivated(plan)) == 9
    assert plan.next_state.recent_deactivations == ((b.NOW, 9),)
    recent = model.SyncState(recent_deactivations=((b.NOW - dt.timedelta(hours=23), 45),))
    assert run(entra, users, state=recent).status == "needs_approval"


def test_approved_deactivations_do_not_count_toward_the_window() -> None:
    entra, users = world(40, range(0, 12))
    held = run(entra, users)
    approved = run(entra, users, state=held.next_state, approve=model.Approval(12))
    assert approved.status == "succeeded"
    assert approved.next_state.recent_deactivations == ()


@pytest.mark.parametrize(("text", "expected"), [
    ("12", model.Approval(12)),
    ("12:0123456789ab", model.Approval(12, "0123456789ab")),
    ("0123456789ab", model.Approval(None, "0123456789ab")),
    ("123456789012", model.Approval(None, "123456789012")),
])
def test_approval_parses_count_digest_or_both(text: str, expected: model.Approval) -> None:
    assert model.Approval.parse(text) == expected
    assert model.Approval.parse(str(expected)) == expected


@pytest.mark.parametrize("text", ["", "-1", "12:", "12:XYZ", "0123456789abc", "1.5", "a" * 40])
def test_a_malformed_approval_is_refused_with_what_is_expected(text: str) -> None:
    with pytest.raises(ValueError, match="expected N, N:DIGEST or DIGEST"):
        model.Approval.parse(text)
