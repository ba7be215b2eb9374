"""R17: what a run with `enabled: false` (the integration removed) does to calendars.

FAQ: "What happens if I remove the Microsoft Entra ID integration? The calendar
synchronization stops, the Outlook events will no longer be visible in Emply after
next synchronization". So such a run removes every calendar the sync keeps in Emply
together with its mirrored events (`calendar_remove`), and nothing else of the
integration's: no user is created, no status or role changes, nothing is written to
Entra. Events left without their calendar (an import can make them) go too, under a
removal of the calendar they name, so no mirrored event outlives the integration.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from shared.reconcile import model

CalendarKey = tuple[str, str]
"""(userId, calendar id): what identifies a calendar in Emply."""


def removal_changes(emply: model.EmplySnapshot) -> list[model.Change]:
    """One `calendar_remove` per calendar (or calendar named by events), in key order."""
    events: dict[CalendarKey, int] = {}
    for event in emply.events:
        key = (event.user_id, event.calendar_id)
        events[key] = events.get(key, 0) + 1
    calendars = {(c.user_id, c.id): c for c in emply.calendars}
    changes = []
    for key in sorted({*calendars, *events}):
        user_id, calendar_id = key
        calendar = calendars.get(key)
        count = events.get(key, 0)
        before: dict[str, Any] = {"userId": user_id, "calendarId": calendar_id,
                                  "events": count}
        if calendar is not None:
            before.update(name=calendar.name, isDefault=calendar.is_default,
                          enabled=calendar.enabled)
            what = f"calendar {calendar.name or calendar_id!r}"
        else:
            what = f"mirrored events of calendar {calendar_id!r} (not kept in Emply)"
        changes.append(model.Change(
            model.CALENDAR_REMOVE, "R17", model.INTEGRATION_DISABLED, user_id, None,
            before, {},
            f"the integration is removed (settings enabled: false): {what} and its "
            f"{count} mirrored event{'s' if count != 1 else ''} are removed from Emply",
        ))
    return changes


def deletions(
    changes: Iterable[model.Change], events: Iterable[Mapping[str, Any]]
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """The calendar and event entities (their key fields) the `calendar_remove` changes
    among `changes` delete: each calendar, and every stored event of it."""
    removed = {
        (str(c.before["userId"]), str(c.before["calendarId"]))
        for c in changes if c.kind == model.CALENDAR_REMOVE
    }
    calendars = [{"userId": u, "id": c} for u, c in sorted(removed)]
    gone = [
        {"userId": e["userId"], "calendarId": e["calendarId"], "id": e["id"]}
        for e in events if (e["userId"], e["calendarId"]) in removed
    ]
    return calendars, gone
