"""R13 and R14 for a group of mailboxes: the pure part of the mailbox pass.

The mailbox pass (`shared.run.mailboxes`) plans a range of users at a time, with the
same rules as the one plan (`calendars.calendar_changes` for R13, `events.with_events`
for R14), so a first run of 10,000 users never holds 400,000 events at once. What it
plans from: the calendars Emply keeps for those users, what Graph lists and what changed
in each mirrored calendar since its delta link, and what the pass left of each calendar
last time (`Known`: its link, how many events Emply holds of it, and their digest).

Stored events are read only for the calendars that need them (`stored_needed`): a
calendar that goes (R13) or is disabled (its events go), one whose delta round reports
changes, one never planned before, and one read in full whose events differ from what
Emply holds by their digest (a new day reads every calendar in full; an unchanged one
then costs no read of Emply). Every other calendar changes nothing but its delta link.
Invariant: `digest` of what the sync wrote for a calendar is its `Known.digest`, and the
digest compares events the way R14 compares a read event with a stored one (`_same`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from shared.reconcile import calendars, events, model, outbound, removal

CalendarKey = tuple[str, str]
"""(Emply user id, calendar id)."""

_PROBE = events.record("u", "c", {"id": "e", "start": "2000-01-01T00:00:00Z",
                                  "end": "2000-01-01T00:00:00Z"})
RECORD_FIELDS: tuple[str, ...] = tuple(_PROBE or ())
"""The fields R14 mirrors of an event (`events.record`'s), which the digest covers."""


@dataclasses.dataclass(frozen=True, slots=True)
class Known:
    """What the pass left of one calendar: its delta link, and Emply's events of it."""

    link: str | None
    events: int
    digest: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class GroupPlan:
    changes: tuple[model.Change, ...]
    writes: model.EventWrites
    known: Mapping[CalendarKey, Known]
    """The planned calendars' `Known` once the writes are applied (links left to the
    caller: it holds the rounds)."""


def digest(records: Iterable[Mapping[str, Any]]) -> str:
    """An order-free digest of a calendar's mirrored events, field values compared as
    R14 compares them (an empty value is no value)."""
    lines = sorted(json.dumps([r.get(f) or None for f in RECORD_FIELDS],
                              separators=(",", ":"), default=str) for r in records)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:32]


def read_digest(user_id: str, calendar_id: str, read: model.CalendarEvents,
                own: Collection[str] = ()) -> str:
    """The digest of the events a full read would leave in Emply (the sync's own events,
    `own`, are never mirrored)."""
    records = (events.record(user_id, calendar_id, e) for e in read.events
               if str(e.get("id")) not in own)
    return digest(r for r in records if r is not None)


def r13_changes(emply: model.EmplySnapshot,
                mailboxes: Mapping[str, tuple[model.EntraCalendar, ...] | None],
                settings: model.Settings) -> list[model.Change]:
    """R13's changes of the group (the counts of events that go with a calendar are
    those of `emply.events`: none when they were not read)."""
    return calendars.calendar_changes(emply, mailboxes, settings, ())


def stored_needed(emply: model.EmplySnapshot,
                  mailboxes: Mapping[str, tuple[model.EntraCalendar, ...] | None],
                  reads: Mapping[CalendarKey, model.CalendarEvents],
                  known: Mapping[CalendarKey, Known],
                  settings: model.Settings,
                  r13: list[model.Change] | None = None, *,
                  own: Collection[str] = ()) -> set[CalendarKey]:
    """The calendars whose stored events must be read before they are planned (see the
    module's docstring). `emply`: the group's users and calendars (events not needed);
    `reads`: by Emply key, the events read this run; `r13`: `r13_changes` when made
    already; `own`: the Graph ids of the sync's own events (R15), which R14 leaves out.
    With the integration removed (R17) every calendar goes with its events: the caller
    reads them all."""
    if not settings.enabled:
        return {(c.user_id, c.id) for c in emply.calendars}
    if r13 is None:
        r13 = r13_changes(dataclasses.replace(emply, events=()), mailboxes, settings)
    need = {(str(c.before["userId"]), str(c.before["calendarId"])) for c in r13
            if c.kind == model.CALENDAR_REMOVE}
    need = {key for key in need if key not in known or known[key].events > 0}
    for key, enabled in events.mirrored_after(emply.calendars, r13).items():
        was = known.get(key)
        read = reads.get(key)
        if not enabled:
            if was is None or was.events > 0:
                need.add(key)
        elif read is None:
            continue
        elif was is None or (read.full and read_digest(*key, read, own) != was.digest) or (
                not read.full and (read.events or read.removed)):
            need.add(key)
    return need


def plan_group(emply: model.EmplySnapshot,
               mailboxes: Mapping[str, tuple[model.EntraCalendar, ...] | None],
               reads: Mapping[CalendarKey, model.CalendarEvents | None],
               settings: model.Settings, planned: Iterable[CalendarKey] = (),
               r13: list[model.Change] | None = None, *, own: Collection[str] = ()
               ) -> GroupPlan:
    """R13's changes for the mailboxes read (`mailboxes`, by Entra id) and for the users
    whose calendars are no longer synced, then R14's for the calendars in `reads` (by
    Emply key). `planned`: the calendars `stored_needed` named, whose stored events are
    in `emply` (their `Known` is in the result); `r13`: `r13_changes` made before the
    events were read (used when no calendar goes: then no count of events is in it);
    `own`: the Graph ids of the sync's own events (R15), never mirrored (R14)."""
    users = {u.id: u.entra_id for u in emply.users}
    by_entra = {e: u for u, e in users.items() if e}
    if not settings.enabled:  # R17: everything Emply keeps goes, nothing is read
        gone = tuple(removal.removal_changes(emply))
        return GroupPlan(gone, model.EventWrites(), {})
    if r13 is None or any(c.kind == model.CALENDAR_REMOVE for c in r13):
        r13 = r13_changes(emply, mailboxes, settings)
    entra_reads = {(users[u] or "", c): r for (u, c), r in reads.items() if users.get(u)}
    entra = model.EntraSnapshot(tenant_id="", users={}, groups={}, mailboxes=mailboxes,
                                events=entra_reads,
                                outbound={g: outbound.OutboundCopy(g, None) for g in own})
    plan = events.with_events(model.Plan(changes=tuple(r13)), entra, emply)
    writes = plan.events or model.EventWrites()
    read_keys = {(by_entra.get(e, ""), c) for e, c in entra_reads}
    return GroupPlan(plan.changes, writes,
                     _known_after(emply, writes, read_keys | set(planned)))


def _known_after(emply: model.EmplySnapshot, writes: model.EventWrites,
                 planned: set[CalendarKey]) -> dict[CalendarKey, Known]:
    """Each planned calendar's events once `writes` are applied: count and digest."""
    held: dict[CalendarKey, dict[str, Mapping[str, Any]]] = {key: {} for key in planned}
    for event in emply.events:
        key = (event.user_id, event.calendar_id)
        if key in held:
            held[key][event.id] = event.stored or {"id": event.id}
    for gone in writes.deletes:
        held.get((gone["userId"], gone["calendarId"]), {}).pop(gone["id"], None)
    for new in writes.upserts:
        key = (str(new["userId"]), str(new["calendarId"]))
        if key in held:
            held[key][str(new["id"])] = new
    return {key: Known(None, len(found), digest(found.values()))
            for key, found in held.items()}
