"""R14 as tables over the pure event planning (`shared.reconcile.events`).

FAQ ("How do I synchronize the calendar with MS365?"): "When the synchronization is
activated the data can be used in Emply's calendar functionality"; ("What happens if
I remove the Microsoft Entra ID integration?"): "the Outlook events will no longer be
visible in Emply after next synchronization". BEHAVIOUR R14: events of enabled
calendars in a window (default today −1 day to +60 days); private events keep only
start, end and showAs.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.reconcile import events, model
from tests.unit import builders as b

KEY = ("u-anna", "main")
USERS = {"u-anna": "anna"}


def graph_event(n: int, **extra: Any) -> dict[str, Any]:
    return {"id": f"ev-{n}", "subject": f"Meeting {n}", "showAs": "busy",
            "sensitivity": "normal",
            "start": {"dateTime": "2026-12-01T09:00:00.0000000", "timeZone": "UTC"},
            "end": {"dateTime": "2026-12-01T10:00:00.0000000", "timeZone": "UTC"},
            **extra}


def stored(n: int, **extra: Any) -> dict[str, Any]:
    record = events.record("u-anna", "main", graph_event(n, **extra))
    assert record is not None
    return record


def outcome(plan: events.EventPlan) -> list[tuple[str, int, int, int, int]]:
    return [(c.reason, c.after["added"], c.after["updated"], c.after["removed"],
             c.after["events"]) for c in plan.changes]


CASES = [
    pytest.param([], events.CalendarRead(True, [graph_event(1), graph_event(2)]),
                 [("events_changed", 2, 0, 0, 2)], ["ev-1", "ev-2"], [], id="first_full_read"),
    pytest.param([stored(1)], events.CalendarRead(True, [graph_event(1)]), [], [], [],
                 id="unchanged_full_read_writes_nothing"),
    pytest.param([stored(1), stored(2)], events.CalendarRead(True, [graph_event(1)]),
                 [("events_changed", 0, 0, 1, 1)], [], ["ev-2"],
                 id="full_read_drops_what_left_the_window_or_was_deleted"),
    pytest.param([stored(1)], events.CalendarRead(False, [graph_event(1, subject="Moved")]),
                 [("events_changed", 0, 1, 0, 1)], ["ev-1"], [], id="delta_update"),
    pytest.param([stored(1), stored(2)], events.CalendarRead(False, [], ["ev-2", "ev-9"]),
                 [("events_changed", 0, 0, 1, 1)], [], ["ev-2"], id="delta_removed"),
    pytest.param([stored(1)], events.CalendarRead(False, [graph_event(1, isCancelled=True)]),
                 [("events_changed", 0, 0, 1, 0)], [], ["ev-1"], id="cancelled_disappears"),
    pytest.param([], events.CalendarRead(True, [graph_event(3, isCancelled=True)]), [], [], [],
                 id="cancelled_never_added"),
    pytest.param([stored(1)], events.CalendarRead(False, []), [], [], [],
                 id="no_change_round"),
    pytest.param([stored(1)], None, [], [], [], id="not_read_kept_as_it_is"),
]


@pytest.mark.parametrize(("have", "read", "changes", "written", "deleted"), CASES)
def test_events_of_a_mirrored_calendar(have: list[dict[str, Any]],
                                       read: events.CalendarRead | None,
                                       changes: list[tuple[str, int, int, int, int]],
                                       written: list[str], deleted: list[str]) -> None:
    plan = events.plan_events(have, {KEY: True}, {KEY: read}, USERS, {KEY: "Calendar"})
    assert outcome(plan) == changes
    assert [e["id"] for e in plan.writes.upserts] == written
    assert [e["id"] for e in plan.writes.deletes] == deleted
    for change in plan.changes:
        assert (change.kind, change.rule, change.user_id, change.entra_id) == (
            model.EVENTS_MIRROR, "R14", "u-anna", "anna")
        assert "'Calendar'" in change.message
    if read is not None:
        assert plan.writes.counts == {KEY: changes[0][4] if changes else len(have)}


# R14 and R15: "Emply shows it once". The sync's own events (their Graph ids: stored on
# the outbound events, or found by their mark this run) are never mirrored.
OWN = [
    pytest.param([], events.CalendarRead(True, [graph_event(1), graph_event(7)]),
                 [("events_changed", 1, 0, 0, 1)], ["ev-1"], [], id="full_read_leaves_own_out"),
    pytest.param([stored(1)], events.CalendarRead(False, [graph_event(7)]), [], [], [],
                 id="delta_leaves_own_out"),
    pytest.param([stored(1), stored(7)], events.CalendarRead(False, []),
                 [("events_changed", 0, 0, 1, 1)], [], ["ev-7"],
                 id="own_mirrored_before_is_removed"),
]


@pytest.mark.parametrize(("have", "read", "changes", "written", "deleted"), OWN)
def test_a_pushed_event_never_appears_in_emplys_events(
        have: list[dict[str, Any]], read: events.CalendarRead, changes: list[Any],
        written: list[str], deleted: list[str]) -> None:
    plan = events.plan_events(have, {KEY: True}, {KEY: read}, USERS, {KEY: "Calendar"},
                              own={"ev-7"})
    assert outcome(plan) == changes
    assert [e["id"] for e in plan.writes.upserts] == written
    assert [e["id"] for e in plan.writes.deletes] == deleted


def test_own_events_are_the_stored_graph_ids_and_those_found_by_their_mark() -> None:
    entra = dataclasses.replace(b.tenant([], {}), outbound={
        "o-2": model.OutboundCopy("AAMk-found", "d"), "o-3": None})
    emply = model.EmplySnapshot((), outbound=(
        model.OutboundEvent("o-1", "u-anna", graph_id="AAMk-stored"),
        model.OutboundEvent("o-2", "u-anna")))
    assert events.own_events(entra, emply) == {"AAMk-stored", "AAMk-found"}


def test_private_events_keep_only_start_end_and_show_as() -> None:
    private = graph_event(1, sensitivity="private", subject="Doctor", isAllDay=True,
                          showAs="oof", location={"displayName": "Clinic"})
    assert events.record("u-anna", "main", private) == {
        "userId": "u-anna", "calendarId": "main", "id": "ev-1", "subject": None,
        "start": "2026-12-01T09:00:00Z", "end": "2026-12-01T10:00:00Z", "timeZone": "UTC",
        "showAs": "oof", "sensitivity": "private", "isAllDay": False}
    assert events.record("u-anna", "main", graph_event(2))["subject"] == "Meeting 2"  # type: ignore[index]
    assert events.record("u-anna", "main", graph_event(3, start=None)) is None
    offset = graph_event(4, start="2026-12-01T10:00:00+01:00")
    assert events.record("u-anna", "main", offset)["start"] == "2026-12-01T09:00:00Z"  # type: ignore[index]


def test_calendars_not_mirrored() -> None:
    have = [stored(1), stored(2)]
    disabled = events.plan_events(have, {KEY: False}, {}, USERS)
    assert outcome(disabled) == [("calendar_disabled", 0, 0, 2, 0)]
    assert [e["id"] for e in disabled.writes.deletes] == ["ev-1", "ev-2"]
    assert "the calendar is disabled" in disabled.changes[0].message
    # A calendar R13 (or R17) removes takes its events with it: nothing planned here.
    gone = events.plan_events(have, {}, {KEY: events.CalendarRead(True, [])}, USERS)
    assert gone.changes == () and gone.writes.deletes == ()


def test_the_window_is_whole_days_around_today_as_set() -> None:
    now = dt.datetime(2026, 12, 2, 23, 30, tzinfo=dt.UTC)
    settings = b.settings({})
    assert settings.event_window == (1, 60)
    assert events.window(now, settings) == (dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
                                             dt.datetime(2027, 2, 1, tzinfo=dt.UTC))
    wide = dataclasses.replace(settings, event_window=(0, 7))
    assert events.window(now, wide) == (dt.datetime(2026, 12, 2, tzinfo=dt.UTC),
                                        dt.datetime(2026, 12, 10, tzinfo=dt.UTC))


def test_mirrored_after_follows_r13s_changes() -> None:
    calendars = (model.EmplyCalendar("u-anna", "main", "Main", True, True),
                 model.EmplyCalendar("u-anna", "team", "Team", False, False))
    remove = model.Change(model.CALENDAR_REMOVE, "R13", "calendar_gone", "u-anna",
                          before={"userId": "u-anna", "calendarId": "team"})
    add = model.Change(model.CALENDAR_ADD, "R13", "additional_calendar", "u-anna",
                       after={"userId": "u-anna", "id": "new", "enabled": False})
    assert events.mirrored_after(calendars, [remove, add]) == {
        ("u-anna", "main"): True, ("u-anna", "new"): False}


def test_explain_says_why_events_are_or_are_not_mirrored() -> None:
    user = b.emply_user("u-anna", entra_id="anna")
    emply = model.EmplySnapshot(
        (user,), calendars=(model.EmplyCalendar("u-anna", "main", "Calendar", True, True),
                            model.EmplyCalendar("u-anna", "team", "Team", False, False)),
        events=(model.EmplyEvent("u-anna", "main", "ev-1"),
                model.EmplyEvent("u-anna", "main", "ev-2", private=True)))
    on = dataclasses.replace(b.settings({}), calendar_sync=True)
    words = events.explain(user, emply, on, dt.datetime(2026, 12, 2, tzinfo=dt.UTC))
    assert words == [
        "events of calendar 'Calendar' are mirrored: 2 in the window 2026-12-01T00:00:00Z to "
        "2027-02-01T00:00:00Z (eventWindow: 1 day(s) back, 60 ahead); events outside the "
        "window, and cancelled or deleted ones, are not; 1 private event(s) keep only their "
        "start, end and showAs",
        "events of calendar 'Team' are not mirrored: the calendar is disabled (the user can "
        "enable it in the user settings)",
    ]
    assert events.explain(user, emply, b.settings({}), b.NOW) == []


# --- a property: whatever was stored, a full read leaves exactly what was read ----------

EVENT_IDS = st.integers(min_value=0, max_value=12)
SUBJECTS = st.sampled_from(["a", "b", "c"])
SENSITIVITY = st.sampled_from(["normal", "private"])
GRAPH_EVENTS = st.dictionaries(EVENT_IDS, st.tuples(SUBJECTS, SENSITIVITY, st.booleans()))


@given(stored_events=GRAPH_EVENTS, read_events=GRAPH_EVENTS)
def test_a_full_read_then_a_delta_converge_on_graph(
    stored_events: dict[int, tuple[str, str, bool]],
    read_events: dict[int, tuple[str, str, bool]],
) -> None:
    def as_graph(found: dict[int, tuple[str, str, bool]]) -> list[dict[str, Any]]:
        return [graph_event(n, subject=s, sensitivity=p, isCancelled=c)
                for n, (s, p, c) in sorted(found.items())]

    have = [r for e in as_graph(stored_events)
            if (r := events.record("u-anna", "main", e)) is not None]
    plan = events.plan_events(have, {KEY: True},
                              {KEY: events.CalendarRead(True, as_graph(read_events))}, USERS)
    after = {e["id"]: e for e in have}
    for gone in plan.writes.deletes:
        del after[gone["id"]]
    after.update({e["id"]: e for e in plan.writes.upserts})
    expected = {r["id"]: r for e in as_graph(read_events)
                if (r := events.record("u-anna", "main", e)) is not None}
    assert after == expected
    assert plan.writes.counts == {KEY: len(expected)}
    assert all(e["subject"] is None for e in after.values() if e["sensitivity"] == "private")
    # Reading the same again changes nothing.
    again = events.plan_events(list(after.values()), {KEY: True},
                               {KEY: events.CalendarRead(True, as_graph(read_events))}, USERS)
    assert again.changes == () and again.writes.upserts == () and again.writes.deletes == ()
