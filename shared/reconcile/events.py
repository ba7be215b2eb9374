"""R14: which M365 events Emply mirrors, planned from what was read (pure, no I/O).

For the *mirrored* calendars (kept in Emply by R13 after this run, and enabled: the
default calendar always, another one once the user enabled it) the events of the
window, today (UTC) − `pastDays` 00:00 to today + `futureDays` + 1 00:00 (the
setting `eventWindow`, default 1 and 60), are kept in Emply's `events`:

- an event read is added or, when it differs from the stored one, updated; a private
  event (`sensitivity: private`) keeps only its start, end and showAs (no subject);
- a calendar read in full (no delta link yet, an expired one, the window moved to a
  new day) has exactly the events read: every stored event not among them goes (it was
  deleted, cancelled, or left the window); a calendar read through its delta link
  loses the events Graph reports removed (deleted, cancelled, moved out of the window);
- an event the sync created itself (R15's outbound events, `own_events`) is never
  mirrored, and one mirrored before is removed: Emply shows it once, as its own;
- a calendar whose events were not read this run (its mailbox was not found) keeps
  them as they are;
- the events of a calendar that is not mirrored (the user disabled it) are removed;
  those of a calendar R13 removes go with it (`calendar_remove`).

One `events_mirror` change per calendar that changed, with counts (added, updated,
removed, events after): a first run of 10,000 users is 20,000 changes at most, never
one per event. The entities to write ride along (`model.EventWrites`), not in the report.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from shared.reconcile import model

EVENTS_CHANGED = "events_changed"
CALENDAR_DISABLED = "calendar_disabled"

CalendarKey = tuple[str, str]
"""(Emply user id, calendar id)."""
PRIVATE_KEEPS = ("start", "end", "showAs")
"""What a private event keeps (R14)."""


CalendarRead = model.CalendarEvents


@dataclasses.dataclass(frozen=True, slots=True)
class EventPlan:
    changes: tuple[model.Change, ...]
    writes: model.EventWrites


def window(now: dt.datetime, settings: model.Settings) -> tuple[dt.datetime, dt.datetime]:
    """R14's window: [today − pastDays, today + futureDays + 1) at 00:00 UTC."""
    past, future = settings.event_window
    today = dt.datetime.combine(now.astimezone(dt.UTC).date(), dt.time(), dt.UTC)
    return today - dt.timedelta(days=past), today + dt.timedelta(days=future + 1)


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def mirrored_after(calendars: Iterable[model.EmplyCalendar],
                   changes: Iterable[model.Change]) -> dict[CalendarKey, bool]:
    """Every calendar Emply keeps after R13's changes → whether it is enabled."""
    kept = {(c.user_id, c.id): c.enabled for c in calendars}
    for change in changes:
        if change.kind == model.CALENDAR_REMOVE:
            kept.pop((str(change.before["userId"]), str(change.before["calendarId"])), None)
        elif change.kind == model.CALENDAR_ADD:
            kept[(str(change.after["userId"]), str(change.after["id"]))] = bool(
                change.after["enabled"])
    return kept


def _utc(value: Any) -> str | None:
    """A Graph dateTimeTimeZone (asked for in UTC) or ISO string as `...Z`; None if not
    a date-time."""
    text = value.get("dateTime") if isinstance(value, Mapping) else value
    if not isinstance(text, str):
        return None
    head, dot, fraction = text.strip().partition(".")
    offset = ""
    for sign in ("Z", "+", "-"):
        cut = fraction.find(sign) if dot else -1
        if cut >= 0:
            offset = fraction[cut:]
            break
    try:
        moment = dt.datetime.fromisoformat(head + offset.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return iso(moment)


def record(user_id: str, calendar_id: str, event: Mapping[str, Any]
           ) -> dict[str, Any] | None:
    """The Emply event for a Graph event; None for a cancelled one or one without times."""
    start, end = _utc(event.get("start")), _utc(event.get("end"))
    if event.get("isCancelled") is True or start is None or end is None:
        return None
    private = event.get("sensitivity") == "private"
    show_as = event.get("showAs")
    out: dict[str, Any] = {
        "userId": user_id, "calendarId": calendar_id, "id": str(event["id"]),
        "subject": None, "start": start, "end": end, "timeZone": "UTC",
        "showAs": show_as if isinstance(show_as, str) else None,
        "sensitivity": "private" if private else None, "isAllDay": False,
    }
    if not private:
        subject, sensitivity = event.get("subject"), event.get("sensitivity")
        out["subject"] = subject if isinstance(subject, str) else None
        out["sensitivity"] = sensitivity if isinstance(sensitivity, str) else None
        out["isAllDay"] = event.get("isAllDay") is True
    return out


def _same(stored: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether a stored event already is `new` (a stored field left out, or a default
    such as false, counts as empty)."""
    return all((stored.get(k) or None) == (v or None) for k, v in new.items())


def plan_events(
    stored_events: Iterable[Mapping[str, Any]],
    kept: Mapping[CalendarKey, bool],
    reads: Mapping[CalendarKey, CalendarRead | None],
    users: Mapping[str, str | None],
    names: Mapping[CalendarKey, str | None] | None = None,
    own: Collection[str] = (),
) -> EventPlan:
    """R14's changes. `kept`: calendars Emply keeps after R13 (→ enabled); `reads`: the
    mirrored calendars read this run (None: not found); `users`: Emply user id → Entra
    id; `names`: calendar names for the messages; `own`: Graph ids of the events the
    sync created itself (R15), never mirrored."""
    by_calendar: dict[CalendarKey, dict[str, Mapping[str, Any]]] = {}
    for event in stored_events:
        key = (str(event["userId"]), str(event["calendarId"]))
        by_calendar.setdefault(key, {})[str(event["id"])] = event
    changes: list[model.Change] = []
    upserts: list[dict[str, Any]] = []
    deletes: list[dict[str, str]] = []
    counts: dict[CalendarKey, int] = {}
    for key in sorted({*by_calendar, *reads}):
        have = by_calendar.get(key, {})
        enabled = kept.get(key)
        if enabled is None:
            continue  # not kept: R13 (or R17) removes the calendar with its events
        if not enabled:
            if have:
                deletes += _keys(key, have)
                changes.append(_change(key, users, names, len(have), 0, 0, len(have),
                                       CALENDAR_DISABLED, "the calendar is disabled"))
            continue
        read = reads.get(key)
        if read is None:
            counts[key] = len(have)
            continue
        written, removed = _mirror(key, have, read, own)
        upserts += written
        added = sum(1 for e in written if e["id"] not in have)
        updated = len(written) - added
        deletes += _keys(key, {e: have[e] for e in sorted(removed)})
        counts[key] = len(have) + added - len(removed)
        if added or updated or removed:
            why = ("its window was read in full" if read.full
                   else "Graph reported changes since the last run")
            changes.append(_change(key, users, names, len(have), added, updated,
                                   len(removed), EVENTS_CHANGED, why))
    return EventPlan(tuple(changes), model.EventWrites(tuple(upserts), tuple(deletes), counts))


def _mirror(key: CalendarKey, have: Mapping[str, Mapping[str, Any]], read: CalendarRead,
            own: Collection[str]) -> tuple[list[dict[str, Any]], set[str]]:
    """One calendar's read against what Emply holds: the events to write (new or changed)
    and the ids to remove (gone from a full window; reported removed by delta; the sync's
    own events, R14)."""
    written: list[dict[str, Any]] = []
    seen: set[str] = set()
    gone = set(read.removed)
    for event in read.events:
        new = None if str(event["id"]) in own else record(key[0], key[1], event)
        if new is None:
            gone.add(str(event["id"]))
            continue
        seen.add(new["id"])
        old = have.get(new["id"])
        if old is None or not _same(old, new):
            written.append(new)
    removed = ({e for e in have if e not in seen} if read.full
               else {e for e in gone if e in have and e not in seen}
               | {e for e in have if e in own})
    return written, removed


def _keys(key: CalendarKey, events: Mapping[str, Any]) -> list[dict[str, str]]:
    return [{"userId": key[0], "calendarId": key[1], "id": e} for e in sorted(events)]


def _change(key: CalendarKey, users: Mapping[str, str | None],
            names: Mapping[CalendarKey, str | None] | None, before: int, added: int,
            updated: int, removed: int, reason: str, why: str) -> model.Change:
    user_id, calendar_id = key
    after = before + added - removed
    name = (names or {}).get(key) or calendar_id
    parts = [f"{n} {what}" for n, what in ((added, "added"), (updated, "updated"),
                                           (removed, "removed")) if n]
    return model.Change(
        model.EVENTS_MIRROR, "R14", reason, user_id, users.get(user_id),
        {"userId": user_id, "calendarId": calendar_id, "events": before},
        {"userId": user_id, "calendarId": calendar_id, "events": after, "added": added,
         "updated": updated, "removed": removed},
        f"events of calendar {name!r}: {', '.join(parts)} ({why}); {after} mirrored",
    )


def explain(user: model.EmplyUser, emply: model.EmplySnapshot, settings: model.Settings,
            now: dt.datetime) -> list[str]:
    """R18 for R14: why the user's events are (or are not) mirrored, in plain words."""
    if not settings.enabled or not settings.calendar_sync:
        return []
    start, end = window(now, settings)
    past, future = settings.event_window
    mine = sorted((c for c in emply.calendars if c.user_id == user.id),
                  key=lambda c: (not c.is_default, c.name or c.id))
    if not mine:
        return []
    events: dict[str, list[model.EmplyEvent]] = {}
    for event in emply.events:
        if event.user_id == user.id:
            events.setdefault(event.calendar_id, []).append(event)
    words = []
    for calendar in mine:
        name = calendar.name or calendar.id
        if not calendar.enabled:
            words.append(f"events of calendar {name!r} are not mirrored: the calendar is "
                         "disabled (the user can enable it in the user settings)")
            continue
        held = events.get(calendar.id, [])
        private = sum(e.private for e in held)
        text = (f"events of calendar {name!r} are mirrored: {len(held)} in the window "
                f"{iso(start)} to {iso(end)} (eventWindow: {past} day(s) back, {future} "
                "ahead); events outside the window, and cancelled or deleted ones, are not")
        if private:
            text += (f"; {private} private event(s) keep only their start, end and "
                     "showAs")
        words.append(text)
    return words


def own_events(entra: model.EntraSnapshot, emply: model.EmplySnapshot) -> frozenset[str]:
    """The Graph ids of the events the sync created (R15): stored on the outbound events,
    or found by their mark this run (a POST whose answer was lost).

    Why ids and not the mark itself: R14 reads through `calendarView/delta`, and Graph's
    reference for it (api-reference/v1.0/api/event-delta.md, "OData query parameters")
    says the delta function for calendarView does not support `$expand` or `$filter`,
    so the mark (a single-value extended property, read back only with
    `$expand=singleValueExtendedProperties($filter=id eq '...')`,
    api-reference/v1.0/api/singlevaluelegacyextendedproperty-get.md) never comes with a
    delta page. Leaving delta for a full `calendarView` with `$expand` would read every
    calendar's whole window every run instead of one page of changes. So the mark is
    read where Graph allows it, when the event-push step looks an event up
    (`/users/{id}/events?$filter=singleValueExtendedProperties/Any(...)&$expand=...`),
    and what it found, with the ids stored when the sync created the events, is what
    R14 leaves out here.
    """
    ids = {o.graph_id for o in emply.outbound if o.graph_id}
    ids.update(c.graph_id for c in (entra.outbound or {}).values() if c is not None)
    return frozenset(ids)


def with_events(plan: model.Plan, entra: model.EntraSnapshot, emply: model.EmplySnapshot
                ) -> model.Plan:
    """`plan` with R14's changes and writes added (after R13's calendar changes), from
    the events read (`entra.events`); `plan` itself when none were read."""
    if entra.events is None:
        return plan
    users = {u.id: u.entra_id for u in emply.users}
    by_entra = {e: u for u, e in users.items() if e}
    reads: dict[CalendarKey, CalendarRead | None] = {}
    for (entra_id, calendar_id), found in entra.events.items():
        user_id = by_entra.get(entra_id)
        if user_id is not None:
            reads[(user_id, calendar_id)] = found
    kept = mirrored_after(emply.calendars, plan.changes)
    names: dict[CalendarKey, str | None] = {(c.user_id, c.id): c.name for c in emply.calendars}
    names.update({(str(c.after["userId"]), str(c.after["id"])): c.after.get("name")
                  for c in plan.changes if c.kind == model.CALENDAR_ADD})
    stored = (e.stored or {"userId": e.user_id, "calendarId": e.calendar_id, "id": e.id}
              for e in emply.events)
    planned = plan_events(stored, kept, reads, users, names, own_events(entra, emply))
    return dataclasses.replace(plan, changes=(*plan.changes, *planned.changes),
                               events=planned.writes)

