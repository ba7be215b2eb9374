"""The mailbox pass's pure part (R13, R14 a group of mailboxes at a time): which
calendars' events a run reads, and with which link; which calendars need Emply's
stored events to be planned; the digest that spares the rest."""

from __future__ import annotations

from typing import Any

from shared.graph import events as graph_events
from shared.reconcile import mailbox_plan, model
from shared.run.mailboxes import reads

SETTINGS = model.Settings(tenant_id="t", groups=(), default_role_id="employee",
                          calendar_sync=True)
ANNA = model.EmplyUser(id="u-anna", username="", email=None, entra_id="anna")
BO = model.EmplyUser(id="u-bo", username="", email=None, entra_id="bo")
GONE = model.EmplyUser(id="u-gone", username="", email=None, entra_id="gone",
                       status="deactivated")
CALENDARS = (model.EmplyCalendar("u-anna", "main", "Calendar", True, True),
             model.EmplyCalendar("u-anna", "team", "Team", False, True),
             model.EmplyCalendar("u-anna", "off", "Off", False, False),
             model.EmplyCalendar("u-gone", "g", "Calendar", True, True))
LISTED = {
    "anna": (model.EntraCalendar("main", "Calendar", True, True),
             model.EntraCalendar("team", "Team", False, True),
             model.EntraCalendar("off", "Off", False, True),
             model.EntraCalendar("boss", "Boss", False, False)),
    "bo": (model.EntraCalendar("bo-main", "Calendar", True, True),),
}
SNAPSHOT = model.EmplySnapshot(users=(ANNA, BO, GONE), calendars=CALENDARS)


def event(n: int, **extra: Any) -> dict[str, Any]:
    return {"id": f"e{n}", "subject": f"Meeting {n}", "showAs": "busy",
            "start": {"dateTime": "2026-12-02T09:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2026-12-02T10:00:00", "timeZone": "UTC"}, **extra}


def records(user: str, calendar: str, *events: dict[str, Any]) -> str:
    return mailbox_plan.read_digest(user, calendar, model.CalendarEvents(True, events))


def test_the_enabled_calendars_are_read_with_the_link_the_pass_holds() -> None:
    known = {("u-anna", "main"): mailbox_plan.Known("link-main", 3, "d"),
             ("u-anna", "team"): mailbox_plan.Known(None, 5, "d")}  # a new day: no link
    r13 = mailbox_plan.r13_changes(SNAPSHOT, LISTED, SETTINGS)
    assert reads.wanted_events(SNAPSHOT, LISTED, known, r13,
                               {"anna": "u-anna", "bo": "u-bo"}) == [
        graph_events.Wanted("anna", "main", "link-main"),
        graph_events.Wanted("anna", "team", None),  # read in full
        graph_events.Wanted("bo", "bo-main", None),  # a default calendar R13 adds now
    ]


def test_only_calendars_that_change_or_are_unknown_need_emplys_events() -> None:
    main = (event(1), event(2))
    same = records("u-anna", "main", *main)
    known = {("u-anna", "main"): mailbox_plan.Known("l", 2, same),
             ("u-anna", "team"): mailbox_plan.Known("l", 4, "old"),
             ("u-gone", "g"): mailbox_plan.Known("l", 7, "x")}
    unchanged = {("u-anna", "main"): model.CalendarEvents(False, ()),
                 ("u-anna", "team"): model.CalendarEvents(False, ())}
    # Anna's calendars answer no change; the deactivated user's calendar goes (R13), so
    # its 7 events must be read to go with it; Bo's new default calendar is unknown, and
    # so is what Emply holds of Anna's disabled one (its events would go).
    need = mailbox_plan.stored_needed(SNAPSHOT, LISTED, {
        **unchanged, ("u-bo", "bo-main"): model.CalendarEvents(True, ())}, known, SETTINGS)
    assert need == {("u-gone", "g"), ("u-bo", "bo-main"), ("u-anna", "off")}
    known[("u-anna", "off")] = mailbox_plan.Known(None, 0, mailbox_plan.digest([]))
    # A full read (a new day) of the same events needs nothing; one that differs does.
    full = {("u-anna", "main"): model.CalendarEvents(True, main),
            ("u-anna", "team"): model.CalendarEvents(True, (event(3),))}
    assert mailbox_plan.stored_needed(SNAPSHOT, LISTED, full, known, SETTINGS) == {
        ("u-gone", "g"), ("u-anna", "team")}
    # A delta round with a change needs them; the calendar the user disabled with events
    # known in Emply needs them (they go).
    changed = {("u-anna", "main"): model.CalendarEvents(False, (event(9),))}
    off = {**known, ("u-anna", "off"): mailbox_plan.Known(None, 1, "x")}  # Emply has 1
    assert mailbox_plan.stored_needed(SNAPSHOT, LISTED, changed, off, SETTINGS) == {
        ("u-gone", "g"), ("u-anna", "main"), ("u-anna", "off")}


def test_the_digest_compares_as_r14_compares() -> None:
    one = records("u", "c", event(1), event(2))
    assert one == records("u", "c", event(2), event(1))  # order-free
    assert one != records("u", "c", event(1), event(2, subject="Moved"))
    private = records("u", "c", event(1, sensitivity="private", subject="Doctor"))
    assert private == records("u", "c", event(1, sensitivity="private", subject="Other"))
    stored = {"userId": "u", "calendarId": "c", "id": "e1", "subject": "Meeting 1",
              "start": "2026-12-02T09:00:00Z", "end": "2026-12-02T10:00:00Z",
              "timeZone": "UTC", "showAs": "busy", "sensitivity": None, "isAllDay": False}
    assert mailbox_plan.digest([stored]) == records("u", "c", event(1))


def test_a_group_plan_writes_what_r13_and_r14_say_and_knows_what_emply_then_holds() -> None:
    stored = tuple(model.EmplyEvent("u-gone", "g", f"x{n}", False,
                                    {"userId": "u-gone", "calendarId": "g", "id": f"x{n}"})
                   for n in range(2))
    plan = mailbox_plan.plan_group(
        model.EmplySnapshot(users=(ANNA, BO, GONE), calendars=CALENDARS, events=stored),
        LISTED, {("u-bo", "bo-main"): model.CalendarEvents(True, (event(1), event(2)))},
        SETTINGS, [("u-bo", "bo-main"), ("u-gone", "g")])
    kinds = sorted((c.kind, c.user_id, c.reason) for c in plan.changes)
    assert kinds == [("calendar_add", "u-bo", "default_calendar"),
                     ("calendar_remove", "u-gone", "user_not_synced"),
                     ("events_mirror", "u-bo", "events_changed")]
    removed = next(c for c in plan.changes if c.kind == "calendar_remove")
    assert removed.before["events"] == 2
    assert [e["id"] for e in plan.writes.upserts] == ["e1", "e2"]
    assert plan.known[("u-bo", "bo-main")] == mailbox_plan.Known(
        None, 2, records("u-bo", "bo-main", event(1), event(2)))


def test_with_the_integration_removed_everything_goes() -> None:
    removed = model.Settings(tenant_id="t", groups=(), default_role_id="employee",
                             calendar_sync=True, enabled=False)
    assert mailbox_plan.stored_needed(SNAPSHOT, {}, {}, {}, removed) == {
        (c.user_id, c.id) for c in CALENDARS}
    plan = mailbox_plan.plan_group(SNAPSHOT, {}, {}, removed)
    assert {(c.kind, c.rule, c.reason) for c in plan.changes} == {
        ("calendar_remove", "R17", "integration_disabled")}
    assert len(plan.changes) == len(CALENDARS)
