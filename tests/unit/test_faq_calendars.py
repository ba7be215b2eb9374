"""R13 as a table over the pure planner: FAQ "Why is Emply not synchronized with the
calendar?" — each case a mailbox as Graph lists it, what Emply keeps, and the plan."""

from __future__ import annotations

import dataclasses

import pytest

from shared.reconcile import model, planner
from tests.unit import builders as b

MAP = {"grp-staff": "employee"}
ON = dataclasses.replace(b.settings(MAP), calendar_sync=True)
ANNA = b.entra_user("anna")
STAFF = b.tenant([ANNA], {"grp-staff": ["anna"]})


def anna(**kw: object) -> model.EmplyUser:
    kw.setdefault("roles", ("employee",))
    return b.emply_user("u-anna", entra_id="anna", link_tenant_id=b.TENANT,
                        sync_groups=("grp-staff",), linked_domain="contoso.com", **kw)


def graph(cid: str, *, default: bool = False, edit: bool = True) -> model.EntraCalendar:
    return model.EntraCalendar(cid, cid.title(), default, edit)


def stored(cid: str, *, default: bool = False, enabled: bool = False) -> model.EmplyCalendar:
    return model.EmplyCalendar("u-anna", cid, cid.title(), default, enabled)


MAIN, TEAM = graph("main", default=True), graph("team")
KEPT_MAIN = stored("main", default=True, enabled=True)


def plan_of(mailbox: tuple[model.EntraCalendar, ...] | None, kept: tuple[model.EmplyCalendar, ...],
            *, user: model.EmplyUser | None = None, entra: model.EntraSnapshot = STAFF,
            cfg: model.Settings = ON, read: bool = True) -> model.Plan:
    snapshot = dataclasses.replace(entra, mailboxes={"anna": mailbox} if read else None)
    events = tuple(model.EmplyEvent("u-anna", c.id, f"{c.id}-ev") for c in kept)
    return planner.plan(
        snapshot, model.EmplySnapshot((user or anna(),), (), b.ROLES, kept, events),
        cfg, model.SyncState(), b.NOW)


def calendar_changes(plan: model.Plan) -> list[tuple[str, str, str, object]]:
    return [(c.kind, c.reason, c.after.get("id") or c.before.get("calendarId"),
             c.after.get("enabled")) for c in plan.changes if c.kind in model.CALENDAR_KINDS]


CASES = [
    pytest.param((MAIN, TEAM), (), [
        ("calendar_add", "default_calendar", "main", True),
        ("calendar_add", "additional_calendar", "team", False)], id="added_default_enabled"),
    pytest.param((MAIN, graph("boss", edit=False)), (), [
        ("calendar_add", "default_calendar", "main", True)], id="read_only_not_added"),
    pytest.param((MAIN, TEAM), (KEPT_MAIN, stored("team", enabled=True)), [],
                 id="users_choice_enabled_stands"),
    pytest.param((MAIN, TEAM), (KEPT_MAIN, stored("team")), [], id="users_choice_disabled_stands"),
    pytest.param((MAIN,), (KEPT_MAIN, stored("team", enabled=True)), [
        ("calendar_remove", "calendar_gone", "team", None)], id="gone_removed"),
    pytest.param((MAIN, graph("team", edit=False)), (KEPT_MAIN, stored("team")), [
        ("calendar_remove", "calendar_not_editable", "team", None)], id="edit_rights_lost"),
    pytest.param((graph("main"), graph("team", default=True)),
                 (KEPT_MAIN, stored("team")), [
        ("calendar_add", "additional_calendar", "main", True),
        ("calendar_add", "default_calendar", "team", True)], id="default_moved"),
    pytest.param(None, (KEPT_MAIN,), [
        ("calendar_remove", "mailbox_not_in_cloud", "main", None)], id="mailbox_not_in_cloud"),
]


@pytest.mark.parametrize(("mailbox", "kept", "expected"), CASES)
def test_calendars_with_edit_rights_are_kept(
    mailbox: tuple[model.EntraCalendar, ...] | None, kept: tuple[model.EmplyCalendar, ...],
    expected: list[tuple[str, str, str, object]],
) -> None:
    plan = plan_of(mailbox, kept)
    assert calendar_changes(plan) == expected
    assert all(c.rule == "R13" for c in plan.changes if c.kind in model.CALENDAR_KINDS)


@pytest.mark.parametrize(("user", "entra", "cfg", "reason"), [
    pytest.param(anna(calendar_sync=False), STAFF, ON, "calendar_sync_off", id="user_flag_off"),
    pytest.param(anna(), STAFF, dataclasses.replace(ON, calendar_sync=False),
                 "calendar_sync_off", id="setting_off"),
    pytest.param(anna(status="deactivated", deactivated_by="emply"), STAFF, ON,
                 "user_not_synced", id="deactivated"),
    pytest.param(anna(), b.tenant([ANNA], {"grp-staff": []}), ON, "user_not_synced",
                 id="deactivated_by_this_run"),
    pytest.param(b.emply_user("u-anna"), STAFF, ON, "user_not_synced", id="unlinked"),
])
def test_users_not_synced_keep_no_calendar(
    user: model.EmplyUser, entra: model.EntraSnapshot, cfg: model.Settings, reason: str,
) -> None:
    plan = plan_of((MAIN, TEAM), (KEPT_MAIN, stored("team")), user=user, entra=entra, cfg=cfg)
    removed = [c for c in plan.changes if c.kind == model.CALENDAR_REMOVE]
    assert [(c.reason, c.before["calendarId"], c.before["events"]) for c in removed] == [
        (reason, "main", 1), (reason, "team", 1)]
    assert not [c for c in plan.changes if c.kind == model.CALENDAR_ADD]


def test_held_deactivations_keep_their_calendars() -> None:
    """R7: a user whose deactivation the guard holds is still active: nothing of it goes."""
    others = [b.emply_user(f"u-{i}", entra_id=f"e{i}", link_tenant_id=b.TENANT,
                           sync_groups=("grp-staff",), linked_domain="contoso.com",
                           roles=("employee",)) for i in range(60)]
    entra = dataclasses.replace(b.tenant([ANNA], {"grp-staff": []}),
                                mailboxes={"anna": (MAIN,)})
    plan = planner.plan(entra, model.EmplySnapshot((anna(), *others), (), b.ROLES,
                                                   (KEPT_MAIN,)), ON, model.SyncState(), b.NOW)
    assert plan.held and not [c for c in plan.changes if c.kind in model.CALENDAR_KINDS]


def test_a_mailbox_not_read_keeps_its_calendars() -> None:
    assert calendar_changes(plan_of(None, (KEPT_MAIN,), read=False)) == []


def test_the_words_answer_the_faq() -> None:
    plan = plan_of((MAIN, TEAM), ())
    assert [c.message for c in plan.changes] == [
        "the user's default calendar 'Main' is added: enabled, and it cannot be disabled",
        "calendar 'Team', where the user has editing rights, is added disabled; the user "
        "can enable it",
    ]
    gone = plan_of((MAIN,), (KEPT_MAIN, stored("team")))
    assert gone.changes[0].message == (
        "calendar 'Team' is removed with its 1 mirrored event: it no longer exists in the "
        "user's mailbox")
