"""Hypothesis properties of plan + apply (R2–R8, R11)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.reconcile import convert, entity_writes, model, planner, scope, touched
from shared.run import report as run_report
from shared.run import state as sync_state
from tests.unit import builders as b

pytestmark = pytest.mark.slow

GROUPS = ["g1", "g2", "g3"]
ROLE_IDS = ["employee", "hr", "manager", "new_employee", "administrator"]
PEOPLE = [f"p{i}" for i in range(6)]


user_doc = b.user_doc


NAMES = [f"{p}@contoso.com" for p in PEOPLE] + ["shared@contoso.com", "other"]


@st.composite
def worlds(draw: st.DrawFn) -> tuple[model.EntraSnapshot, list[model.EmplyUser], model.Settings]:
    """Small worlds where names collide on purpose: a mail shared by two Entra users, manual
    users whose username or e-mail belongs to someone else, links from an old tenant,
    employees with and without accounts, users deleted in Emply, and a real guard."""
    entra_users = [
        b.entra_user(
            p,
            f"{p}@contoso.com",
            mail=draw(st.sampled_from([f"{p}@contoso.com", f"{p}.alt@contoso.com",
                                       "shared@contoso.com"])),
            enabled=draw(st.booleans()) or draw(st.booleans()),
        )
        for p in PEOPLE
        if draw(st.booleans()) or p == "p0"
    ]
    members = {
        g: draw(st.lists(st.sampled_from([*PEOPLE, *GROUPS]), max_size=5, unique=True))
        for g in GROUPS
        if draw(st.booleans()) or g == "g1"
    }
    entra = b.tenant(entra_users, members)
    mapping = {
        g: draw(st.one_of(st.none(), st.sampled_from(ROLE_IDS[:4])))
        for g in GROUPS
        if draw(st.booleans()) or g == "g1"
    }
    guard = (draw(st.integers(0, 6)), draw(st.sampled_from([0, 20, 50, 100])),
             draw(st.integers(0, 3)))
    cfg = b.settings(mapping, sync_roles=draw(st.booleans()), guard=guard)
    users: list[model.EmplyUser] = []
    for i, p in enumerate(PEOPLE):
        kind = draw(st.sampled_from(["none", "manual", "linked", "stale", "external"]))
        roles = draw(st.lists(st.sampled_from(ROLE_IDS), max_size=3, unique=True))
        employee = draw(st.sampled_from([None, "e1", "e2"]))
        if kind == "manual":
            users.append(b.emply_user(
                f"u{i}", username=draw(st.sampled_from(NAMES)),
                email=draw(st.sampled_from(NAMES)), roles=roles, employee_id=employee,
                status=draw(st.sampled_from(["active", "active", "deactivated", "deleted"])),
                deactivated_by="emply",
            ))
        elif kind in ("linked", "stale"):
            status = draw(st.sampled_from(["active", "deactivated"]))
            by = draw(st.sampled_from(["sync", "emply"])) if status == "deactivated" else None
            users.append(b.emply_user(
                f"u{i}", username=f"{p}@contoso.com", entra_id=p, roles=roles, status=status,
                link_tenant_id=b.TENANT if kind == "linked" else "old-tenant",
                deactivated_by=by, employee_id=employee,
                deactivation_reason=draw(st.sampled_from(
                    [None, "deleted_in_entra", "removed_from_groups"])) if by == "sync" else None,
                sync_groups=draw(st.lists(st.sampled_from(GROUPS), max_size=2, unique=True)),
                role_basis=draw(st.one_of(st.none(), st.dictionaries(
                    st.sampled_from(GROUPS), st.one_of(st.none(), st.sampled_from(ROLE_IDS[:4])),
                    max_size=3))),
                linked_domain=draw(st.sampled_from([None, "contoso.com", "fabrikam.com"])),
            ))
        elif kind == "external":
            users.append(b.emply_user(f"x{i}", username=f"x{i}@partner.com", roles=roles))
    return entra, users, cfg


EMPLOYEES = (model.Employee("e1", "p1@contoso.com"), model.Employee("e2", "shared@contoso.com"),
             model.Employee("e3", "p2.alt@contoso.com"))


def apply_to(
    users: list[model.EmplyUser], plan: model.Plan
) -> list[model.EmplyUser]:
    docs = {u.id: user_doc(u) for u in users}
    writes = entity_writes.apply_plan(docs, {}, plan, "run-1", "2026-11-26T12:00:00Z")
    for written in writes.users:
        docs[written["id"]] = written
    return [convert.emply_user(d) for d in docs.values()]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(worlds())
def test_apply_then_plan_again_yields_nothing(world: Any) -> None:
    entra, users, cfg = world
    first = b.run(entra, users, cfg, employees=EMPLOYEES)
    synced = apply_to(users, first)
    second = b.run(entra, synced, cfg, employees=EMPLOYEES,
                   previous_mapping=first.next_state.previous_mapping)
    assert second.changes == (), second.changes
    assert second.bookkeeping == ()
    assert len(second.held) == len(first.held)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(worlds())
def test_a_plan_applied_leaves_the_same_residual(world: Any) -> None:
    """Planning again right after applying finds what the plan left (held, errors,
    skips) exactly: what lets a run with nothing changed reuse it (`shared.run.unchanged`)."""
    entra, users, cfg = world
    first = b.run(entra, users, cfg, employees=EMPLOYEES)
    second = b.run(entra, apply_to(users, first), cfg, employees=EMPLOYEES,
                   previous_mapping=first.next_state.previous_mapping)
    assert [c.to_json() for c in second.held] == [c.to_json() for c in first.held]
    assert [p.to_json() for p in second.errors] == [p.to_json() for p in first.errors]
    assert dict(second.skips) == dict(first.skips)
    assert second.status == first.status


@settings(max_examples=300, deadline=None)
@given(worlds())
def test_plan_never_touches_users_no_entra_user_matches(world: Any) -> None:
    entra, users, cfg = world
    plan = b.run(entra, users, cfg, employees=EMPLOYEES)
    enabled = [e for e in entra.users.values() if e.account_enabled]
    untouchable = {
        u.id
        for u in users
        if u.entra_id is None
        and not any(
            model.norm(u.username) == model.norm(e.user_principal_name)
            or model.norm(u.email) == model.norm(e.mail_or_upn)
            or any(  # R3 step 4: through the employee profile's e-mail
                emp.id == u.employee_id and model.norm(emp.email) == model.norm(e.mail_or_upn)
                for emp in EMPLOYEES
            )
            for e in enabled
        )
    }
    assert not untouchable & {c.user_id for c in (*plan.changes, *plan.held)}


@settings(max_examples=300, deadline=None)
@given(
    worlds(),
    st.lists(
        st.tuples(
            st.dictionaries(st.sampled_from(GROUPS), st.sampled_from([*ROLE_IDS[:4], None])),
            st.dictionaries(st.sampled_from(GROUPS), st.lists(st.sampled_from(PEOPLE))),
        ),
        max_size=4,
    ),
)
def test_administrator_role_survives_every_mapping_and_membership_change(
    world: Any, steps: list[tuple[dict[str, str | None], dict[str, list[str]]]]
) -> None:
    entra, users, cfg = world
    admins = {u.id for u in users if "administrator" in u.roles}
    previous = None
    for mapping, members in steps:
        cfg = b.settings(mapping or {"g1": "employee"}, guard=(1000, 100))
        entra = b.tenant(list(entra.users.values()), members or {"g1": []})
        plan = b.run(entra, users, cfg, previous_mapping=previous)
        users = apply_to(users, plan)
        previous = plan.next_state.previous_mapping
        assert admins <= {u.id for u in users if "administrator" in u.roles}


@settings(max_examples=200, deadline=None)
@given(worlds())
def test_a_second_run_changes_no_roles(world: Any) -> None:
    entra, users, cfg = world
    first = b.run(entra, users, cfg, employees=EMPLOYEES)
    second = b.run(entra, apply_to(users, first), cfg, employees=EMPLOYEES,
                   previous_mapping=first.next_state.previous_mapping)
    assert not [c for c in second.changes if c.kind == model.SET_ROLES]


def _timeless(plan: model.Plan) -> list[dict[str, Any]]:
    """A plan's changes without the time stamps new links carry (`linkedAt`): the one
    use of the clock that is not its UTC date, and never part of a residual."""
    out = []
    for change in plan.changes:
        data = change.to_json()
        data["after"] = {k: v for k, v in data["after"].items() if k != "linkedAt"}
        out.append(data)
    return out


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    worlds(),
    st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2099, 12, 30)),
    st.integers(-12 * 60, 14 * 60),
)
def test_the_plan_depends_on_the_clock_only_through_the_utc_date(
    world: Any, day: dt.date, offset_minutes: int
) -> None:
    """What lets a run reuse a residual all day long (`shared.run.unchanged`): a plan made at
    00:00:01 and one made at 23:59:59 of the same UTC day (the clock read in any time
    zone) are the same, and so is the residual the first leaves once applied; past
    midnight, when a resignation date falls there, they differ (R8), and the residual
    is not reused."""
    entra, users, cfg = world
    zone = dt.timezone(dt.timedelta(minutes=offset_minutes))

    def at(date: dt.date, hour: int, minute: int, second: int) -> dt.datetime:
        return dt.datetime.combine(date, dt.time(hour, minute, second), dt.UTC).astimezone(zone)

    early, late = at(day, 0, 0, 1), at(day, 23, 59, 59)
    after_midnight = at(day + dt.timedelta(days=1), 0, 0, 1)
    leaver = model.Employee("e-leaver", "leaver@contoso.com", status="pending",
                            resignation_date=day + dt.timedelta(days=1))
    employees = (*EMPLOYEES, leaver)

    first = b.run(entra, users, cfg, employees=employees, now=early)
    same_day = b.run(entra, users, cfg, employees=employees, now=late)
    assert _timeless(same_day) == _timeless(first)
    assert run_report.Outcome.of(same_day) == run_report.Outcome.of(first)

    recorded = sync_state.residual(first, run_id="r1", started=early, tenant_id=b.TENANT,
                                emply_version="v1", organization={"id": b.TENANT})
    assert recorded is not None
    assert recorded.reusable_on(late, approve=None)
    assert not recorded.reusable_on(after_midnight, approve=None)
    assert not recorded.reusable_on(late, approve=len(first.held))

    synced = apply_to(users, first)
    previous = first.next_state.previous_mapping
    later = b.run(entra, synced, cfg, employees=employees, now=late, previous_mapping=previous)
    assert later.changes == ()
    assert run_report.Outcome.of(later) == recorded.outcome
    next_day = b.run(entra, synced, cfg, employees=employees, now=after_midnight,
                     previous_mapping=previous)
    assert [(c.kind, c.employee_id, c.reason) for c in next_day.changes] == [
        (model.EMPLOYEE_STATUS, "e-leaver", "archived")]


def _duplicates(users: list[model.EmplyUser], field: str) -> set[str]:
    seen: dict[str, int] = {}
    for user in users:
        key = model.norm(getattr(user, field))
        if key:
            seen[key] = seen.get(key, 0) + 1
    return {key for key, n in seen.items() if n > 1}


@settings(max_examples=300, deadline=None)
@given(worlds())
def test_a_run_never_gives_two_users_one_username_or_email(world: Any) -> None:
    """An exported state must import again (`emply_checks` refuses duplicates), so a run
    adds no duplicate username or e-mail that was not there before."""
    entra, users, cfg = world
    after = apply_to(users, b.run(entra, users, cfg, employees=EMPLOYEES))
    for field in ("username", "email"):
        assert _duplicates(after, field) <= _duplicates(users, field), field


# --- Planning part of the world (`shared.reconcile.touched`) ---------------------------

MORE_PEOPLE = [*PEOPLE, "p6", "p7"]


def _snapshot(users: list[model.EmplyUser]) -> model.EmplySnapshot:
    return model.EmplySnapshot(tuple(users), EMPLOYEES, b.ROLES)


def _plan(entra: model.EntraSnapshot, emply: model.EmplySnapshot, cfg: model.Settings,
          state: model.SyncState, outside: model.Outside | None = None) -> model.Plan:
    return planner.plan(entra, emply, cfg, state, b.NOW, outside=outside)


@st.composite
def changed_worlds(draw: st.DrawFn) -> tuple[Any, ...]:
    """A world synced by a first plan, then changed here and there: Entra users enabled or
    disabled, given another mail or UPN, deleted or added, group members moved, and Emply
    users renamed or deactivated in Emply."""
    entra, users, cfg = draw(worlds())
    # Linked users whose username and e-mail are not their Entra user's: found by id only.
    users = [dataclasses.replace(u, username=f"{u.id}.legacy", email=f"{u.id}.legacy@x.com")
             if u.entra_id and draw(st.booleans()) else u for u in users]
    first = b.run(entra, users, cfg, employees=EMPLOYEES)
    synced = apply_to(users, first)
    changed = dict(entra.users)
    for p in MORE_PEOPLE:
        action = draw(st.sampled_from(["same", "same", "same", "toggle", "mail", "upn",
                                       "delete", "add"]))
        user = changed.get(p)
        if action == "add" and user is None:
            changed[p] = b.entra_user(p, f"{p}@contoso.com",
                                      mail=draw(st.sampled_from(NAMES[:-1])))
        elif user is None or action in ("same", "add"):
            continue
        elif action == "toggle":
            changed[p] = dataclasses.replace(user, account_enabled=not user.account_enabled)
        elif action == "mail":
            changed[p] = dataclasses.replace(user, mail=draw(st.sampled_from(NAMES[:-1])))
        elif action == "upn":
            changed[p] = dataclasses.replace(
                user, user_principal_name=draw(st.sampled_from(NAMES[:-1])))
        else:
            del changed[p]
    groups = {
        g.id: (g if draw(st.booleans()) else dataclasses.replace(g, members=frozenset(
            draw(st.lists(st.sampled_from([*MORE_PEOPLE, *GROUPS]), max_size=5)))))
        for g in entra.groups.values()
    }
    entra2 = dataclasses.replace(entra, users=changed, groups=groups)
    users2 = []
    for user in synced:
        edit = draw(st.sampled_from(["same", "same", "same", "email", "deactivate"]))
        if edit == "email":
            user = dataclasses.replace(user, email=draw(st.sampled_from(NAMES)))
        elif edit == "deactivate" and user.status == "active":
            user = dataclasses.replace(user, status="deactivated", deactivated_by="emply")
        users2.append(user)
    state = model.SyncState(previous_mapping=first.next_state.previous_mapping,
                            recent_deactivations=first.next_state.recent_deactivations,
                            held_digest=first.next_state.held_digest)
    return cfg, first, state, (entra, _snapshot(synced)), (entra2, _snapshot(users2))


def _seeds(cfg: model.Settings, first: model.Plan,
           before: tuple[model.EntraSnapshot, model.EmplySnapshot],
           after: tuple[model.EntraSnapshot, model.EmplySnapshot]) -> touched.Seeds:
    """What changed from `before` to `after`, as a run finds it: Entra users whose
    attributes or configured groups differ, Emply users that differ, and the users the
    last run held."""
    seeds = touched.Seeds()
    scopes = [scope.configured_groups_by_user(side[0], cfg) for side in (before, after)]
    for entra_id in {*before[0].users, *after[0].users}:
        old, new = before[0].users.get(entra_id), after[0].users.get(entra_id)
        if old != new or scopes[0].get(entra_id) != scopes[1].get(entra_id):
            seeds.entra.add(entra_id)
            if old is not None:
                seeds.before.append(touched.entra_keys(old))
    old_users = {u.id: u for u in before[1].users}
    for user in after[1].users:
        if old_users.get(user.id) != user:
            seeds.users.add(user.id)
            seeds.before.append(touched.user_keys(old_users[user.id]))
    seeds.users.update(c.user_id for c in first.held if c.user_id)
    return seeds


def _outside(emply: model.EmplySnapshot, part: touched.Touched) -> model.Outside:
    return model.Outside(touched.linked_active(u for u in emply.users if u.id not in part.users))


def _multiset(items: Any) -> list[str]:
    return sorted(json.dumps(i, sort_keys=True) for i in items)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(changed_worlds())
def test_a_plan_on_a_part_is_the_whole_plan_restricted_to_it(case: Any) -> None:
    """What lets a run plan only what a delta round touched: the users that changed and
    all that share an R3 key with them (`touched.closure`), planned with what the guard
    needs of the rest, get exactly what the plan of the whole world gives them, and the
    whole plan gives nobody else anything."""
    cfg, first, state, before, after = case
    part = touched.closure(touched.SnapshotWorld(*after), _seeds(cfg, first, before, after))
    whole = _plan(*after, cfg, state)
    restricted = _plan(*touched.restrict(*after, part), cfg, state,
                       _outside(after[1], part))
    assert _multiset(c.to_json() for c in restricted.changes) == _multiset(
        c.to_json() for c in whole.changes)
    assert _multiset(c.to_json() for c in restricted.held) == _multiset(
        c.to_json() for c in whole.held)
    assert sorted(map(repr, restricted.bookkeeping)) == sorted(map(repr, whole.bookkeeping))
    assert restricted.next_state == whole.next_state
    concerning = [p.to_json() for p in whole.errors
                  if not touched.names_entity(p.to_json())
                  or p.entra_id in part.entra or p.user_id in part.users
                  or set(p.candidates) & part.users]
    assert _multiset(p.to_json() for p in restricted.errors) == _multiset(concerning)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(changed_worlds())
def test_a_run_of_a_part_carries_the_rest_of_the_last_outcome(case: Any) -> None:
    """The run's outcome (errors and skips of the whole world) from the last run's, the
    part's plan as it was and the part's plan now (`touched.carried`) is the outcome of
    planning the whole world again."""
    cfg, first, state, before, after = case
    part = touched.closure(touched.SnapshotWorld(*after), _seeds(cfg, first, before, after))
    old = _plan(*touched.restrict(*before, part), cfg, state, _outside(before[1], part))
    new = _plan(*touched.restrict(*after, part), cfg, state, _outside(after[1], part))
    recorded = run_report.Outcome.of(first)
    errors, skips = touched.carried(recorded.errors, recorded.skips, old, new)
    whole = _plan(*after, cfg, state)
    assert _multiset(errors) == _multiset(p.to_json() for p in whole.errors)
    assert skips == dict(whole.skips)
