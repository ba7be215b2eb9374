"""R17, the FAQ's "What happens if I remove the Microsoft Entra ID integration?", as a
table over the pure planner: each case is a world, the settings, and what the plan does.

"The calendar synchronization stops, the Outlook events will no longer be visible in
Emply after next synchronization, new users connected to an Entra ID group will not be
created in Emply. If you have configured Emply to update Microsoft Entra ID users, this
will stop." Users stay as they are.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from shared.reconcile import entity_writes, model, planner, removal
from tests.unit import builders as b

MAP = {"grp-staff": "employee"}
ANNA = b.entra_user("anna")
BO = b.entra_user("bo")


def linked(uid: str, **kw: object) -> model.EmplyUser:
    kw.setdefault("roles", ("employee",))
    return b.emply_user(f"u-{uid}", entra_id=uid, link_tenant_id=b.TENANT,
                        sync_groups=("grp-staff",), linked_domain="contoso.com", **kw)


def calendar(user: str, cal: str, *, default: bool = False,
             enabled: bool = False) -> model.EmplyCalendar:
    return model.EmplyCalendar(user, cal, cal.title(), default, enabled)


def events(user: str, cal: str, n: int) -> tuple[model.EmplyEvent, ...]:
    return tuple(model.EmplyEvent(user, cal, f"{cal}-{i}") for i in range(n))


def plan_of(entra: model.EntraSnapshot, users: list[model.EmplyUser], cfg: model.Settings,
            calendars: tuple[model.EmplyCalendar, ...] = (),
            evs: tuple[model.EmplyEvent, ...] = (),
            employees: tuple[model.Employee, ...] = ()) -> model.Plan:
    return planner.plan(
        entra, model.EmplySnapshot(tuple(users), employees, b.ROLES, calendars, evs),
        cfg, model.SyncState(), b.NOW)


OFF = b.settings(MAP, enabled=False)
ON = b.settings(MAP)
STAFF = b.tenant([ANNA, BO], {"grp-staff": ["anna"]})
NOBODY = b.tenant([ANNA, BO], {"grp-staff": []})
TWO_CALENDARS = (calendar("u-anna", "main", default=True, enabled=True),
                 calendar("u-anna", "team"))
SOME_EVENTS = (*events("u-anna", "main", 3), *events("u-anna", "team", 1))

CASES = [
    # (FAQ words, Entra, Emply users, calendars, events, the plan's (kind, user, calendar))
    pytest.param(NOBODY, [linked("anna")], (), (), [], id="leaver_not_deactivated"),
    pytest.param(STAFF, [], (), (), [], id="new_member_not_created"),
    pytest.param(b.tenant([ANNA], {"grp-staff": ["anna"]}),
                 [linked("anna", status="deactivated", deactivated_by="sync",
                         deactivation_reason="removed_from_groups")], (), (), [],
                 id="back_in_group_not_reactivated"),
    pytest.param(b.tenant([b.entra_user("anna", enabled=False)], {"grp-staff": ["anna"]}),
                 [linked("anna")], (), (), [], id="disabled_in_entra_stays_active"),
    pytest.param(STAFF, [linked("anna", roles=("hr",))], (), (), [],
                 id="roles_not_synced"),
    pytest.param(STAFF, [linked("anna")], TWO_CALENDARS, SOME_EVENTS,
                 [("u-anna", "main", 3), ("u-anna", "team", 1)],
                 id="calendars_and_events_removed"),
    pytest.param(NOBODY, [linked("anna")], (), events("u-anna", "gone", 2),
                 [("u-anna", "gone", 2)], id="events_without_calendar_removed"),
    pytest.param(STAFF, [linked("anna", status="deactivated", deactivated_by="sync",
                                deactivation_reason="removed_from_groups")],
                 (calendar("u-anna", "main", default=True, enabled=True),), (),
                 [("u-anna", "main", 0)], id="deactivated_users_calendars_removed_too"),
]


@pytest.mark.parametrize(("entra", "users", "calendars", "evs", "removed"), CASES)
def test_a_removed_integration_only_removes_calendars_and_events(
    entra: model.EntraSnapshot, users: list[model.EmplyUser],
    calendars: tuple[model.EmplyCalendar, ...], evs: tuple[model.EmplyEvent, ...],
    removed: list[tuple[str, str, int]],
) -> None:
    plan = plan_of(entra, users, OFF, calendars, evs)
    assert plan.status == "disabled"
    assert plan.held == () and plan.errors == () and plan.bookkeeping == ()
    assert [(c.kind, c.rule, c.reason) for c in plan.changes] == [
        (model.CALENDAR_REMOVE, "R17", model.INTEGRATION_DISABLED)] * len(removed)
    assert [(c.user_id, c.before["calendarId"], c.before["events"])
            for c in plan.changes] == removed
    # The same world with the integration on would change users: the case is real.
    if not calendars and not evs:
        assert plan_of(entra, users, ON).changes != ()


def test_the_words_say_why_a_calendar_goes() -> None:
    plan = plan_of(STAFF, [linked("anna")], OFF, TWO_CALENDARS, SOME_EVENTS)
    assert plan.changes[0].message == (
        "the integration is removed (settings enabled: false): calendar 'Main' and its 3 "
        "mirrored events are removed from Emply")
    assert plan.changes[0].before == {"userId": "u-anna", "calendarId": "main", "events": 3,
                                      "name": "Main", "isDefault": True, "enabled": True}


def test_feature_settings_are_not_reported_while_removed() -> None:
    cfg = dataclasses.replace(OFF, calendar_sync=True, photo_sync=True,
                              write_back=("create", "update", "delete"))
    assert plan_of(STAFF, [linked("anna")], cfg).errors == ()
    assert plan_of(STAFF, [linked("anna")], dataclasses.replace(cfg, enabled=True)).errors == ()


def test_employee_lifecycle_is_emply_s_own_and_goes_on() -> None:
    """R8 acts on Emply's resignation dates, not on Entra: it is not the integration's."""
    employee = model.Employee("e-anna", "anna@contoso.com", "active",
                              resignation_date=b.NOW.date() - dt.timedelta(days=1))
    plan = plan_of(NOBODY, [linked("anna", employee_id="e-anna")], OFF,
                   employees=(employee,))
    assert [(c.kind, c.employee_id) for c in plan.changes] == [
        (model.EMPLOYEE_STATUS, "e-anna")]


def test_calendar_removals_write_no_user_and_delete_each_event_of_the_calendar() -> None:
    users = [linked("anna")]
    plan = plan_of(STAFF, users, OFF, TWO_CALENDARS, (*SOME_EVENTS,
                                                      *events("u-bo", "main", 1)))
    writes = entity_writes.apply_plan({"u-anna": {"id": "u-anna"}}, {}, plan, "run-1", "now")
    assert writes.users == [] and writes.employees == []
    stored = [{"userId": e.user_id, "calendarId": e.calendar_id, "id": e.id}
              for e in (*SOME_EVENTS, *events("u-bo", "other", 1))]
    calendars, gone = removal.deletions(plan.changes, stored)
    assert calendars == [{"userId": "u-anna", "id": "main"}, {"userId": "u-anna", "id": "team"},
                         {"userId": "u-bo", "id": "main"}]
    assert gone == stored[:4]  # u-bo's "other" calendar was not removed: its event stays
