"""Which calendars a run reads events of, and with which stored delta link (R14)."""

from __future__ import annotations

from typing import Any

from shared.graph import events as graph_events
from shared.run.steps import events as event_step

WINDOW = ("2026-12-01T00:00:00Z", "2027-02-01T00:00:00Z")
DOC: dict[str, Any] = {
    "users": [{"id": "u-anna", "entraId": "anna"}, {"id": "u-bo", "entraId": "bo"},
              {"id": "u-manual", "entraId": None}],
    "calendars": [{"userId": "u-anna", "id": "main", "enabled": True},
                  {"userId": "u-anna", "id": "team", "enabled": True},
                  {"userId": "u-anna", "id": "off", "enabled": False}],
    "events": [{"userId": "u-anna", "calendarId": "main", "id": f"e{n}"} for n in range(3)],
}
LISTED: dict[str, Any] = {
    "anna": [{"id": "main", "isDefaultCalendar": True, "canEdit": True},
             {"id": "team", "isDefaultCalendar": False, "canEdit": True},
             {"id": "off", "isDefaultCalendar": False, "canEdit": True},
             {"id": "boss", "isDefaultCalendar": False, "canEdit": False}],
    "bo": [{"id": "bo-main", "isDefaultCalendar": True, "canEdit": True}],
    "nobody": [{"id": "x", "isDefaultCalendar": True, "canEdit": True}],
    "cloudless": None,
}


def test_the_enabled_calendars_are_read_with_a_link_only_when_emply_matches_it() -> None:
    links = {"anna": {"main": ["link-main", 3], "team": ["link-team", 5]}}
    assert event_step.wanted(DOC, LISTED, links) == [
        graph_events.Wanted("anna", "main", "link-main"),  # Emply holds its 3 events
        graph_events.Wanted("anna", "team", None),  # Emply holds 0, not 5: in full
        graph_events.Wanted("bo", "bo-main", None),  # a default calendar R13 adds now
    ]


def teststored_links_count_only_for_their_format_and_window() -> None:
    good = {"format": 1, "window": list(WINDOW),
            "calendars": {"anna": {"main": ["l", 3], "bad": ["l"]}, "bo": "x"}}
    assert event_step.stored_links(good, WINDOW) == {"anna": {"main": ["l", 3]}}
    assert event_step.stored_links({**good, "window": ["a", "b"]}, WINDOW) == {}
    assert event_step.stored_links({**good, "format": 2}, WINDOW) == {}
    assert event_step.stored_links(None, WINDOW) == {}
    assert event_step.stored_links({**good, "calendars": []}, WINDOW) == {}
