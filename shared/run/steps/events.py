"""R14 end to end: which calendars' events a run reads, with which delta links, and
writing what `shared.reconcile.events` planned.

The delta links live in the sync's own state, in the part "events"::

    state-events.json.gz  {"format": 1, "window": [start, end],
                           "calendars": {entraId: {calendarId: [deltaLink, events]}}}

`events` is how many events the calendar had in Emply once the link's round was
applied. A link is used only when the window is the stored one (a new day moves the
window: every calendar is read in full, which drops the events that left it and
reads the new days) and Emply still holds that many events of the calendar (an
import, or a run with the integration removed, changed them: read in full). The
part is written only after a run applied its plan (never by a dry run), so a failed
run reads the same changes again.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

from shared.graph import client as graph_client
from shared.graph import events as graph_events
from shared.graph import mailboxes
from shared.reconcile import events, model
from shared.store import protocols

STATE_PART = "events"
FORMAT = 1

Links = dict[str, dict[str, list[Any]]]


@dataclasses.dataclass(frozen=True)
class EventsRead:
    """What a run read of the mirrored calendars' events, and what it was read with."""

    window: tuple[str, str]
    read: graph_events.EventRead
    links: Links
    """The stored delta links (as loaded)."""


def stored_links(state: Any, window: tuple[str, str]) -> Links:
    """The stored links if they are of this format and window, else none (full reads)."""
    if not isinstance(state, dict) or state.get("format") != FORMAT \
            or state.get("window") != list(window):
        return {}
    calendars = state.get("calendars")
    if not isinstance(calendars, dict):
        return {}
    return {u: {c: v for c, v in cals.items()
                if isinstance(v, list) and len(v) == 2 and isinstance(v[0], str)
                and isinstance(v[1], int)}
            for u, cals in calendars.items() if isinstance(cals, dict)}


def wanted(doc: Mapping[str, Any], calendars: Mapping[str, list[mailboxes.Calendar] | None],
           links: Links) -> list[graph_events.Wanted]:
    """The calendars whose events this run reads: each calendar R13 keeps enabled after
    this run among those just listed (the default one, others the user enabled), with
    its stored link when Emply holds the events it was applied with."""
    users = {u["entraId"]: u["id"] for u in doc.get("users", ()) if u.get("entraId")}
    enabled = {(c["userId"], c["id"]): bool(c.get("enabled"))
               for c in doc.get("calendars", ())}
    held: dict[tuple[str, str], int] = {}
    for event in doc.get("events", ()):
        key = (event["userId"], event["calendarId"])
        held[key] = held.get(key, 0) + 1
    out = []
    for entra_id, listed in sorted(calendars.items()):
        user_id = users.get(entra_id)
        if listed is None or user_id is None:
            continue
        for calendar in listed:
            key = (user_id, str(calendar["id"]))
            if calendar.get("canEdit") is not True or not (
                    calendar.get("isDefaultCalendar") is True or enabled.get(key)):
                continue
            stored = links.get(entra_id, {}).get(key[1])
            link = stored[0] if stored and stored[1] == held.get(key, 0) else None
            out.append(graph_events.Wanted(entra_id, key[1], link))
    return out


async def read(graph: graph_client.GraphClient, store: protocols.SyncStateStore,
               doc: Mapping[str, Any], settings: model.Settings,
               calendars: mailboxes.CalendarRead, now: dt.datetime) -> EventsRead:
    start, end = events.window(now, settings)
    window = (events.iso(start), events.iso(end))
    links = stored_links(await store.load_state_part(STATE_PART), window)
    found = await graph_events.read_events(graph, wanted(doc, calendars.mailboxes, links),
                                           window)
    return EventsRead(window, found, links)


def with_events(plan: model.Plan, read_: EventsRead, doc: Mapping[str, Any],
                emply: model.EmplySnapshot) -> model.Plan:
    """`plan` with R14's changes and writes added (after R13's calendar changes)."""
    users = {u["id"]: u.get("entraId") for u in doc.get("users", ())}
    by_entra = {e: u for u, e in users.items() if e}
    reads: dict[events.CalendarKey, events.CalendarRead | None] = {}
    for (entra_id, calendar_id), found in read_.read.calendars.items():
        user_id = by_entra.get(entra_id)
        if user_id is not None:
            reads[(user_id, calendar_id)] = None if found is None else events.CalendarRead(
                found.full, found.events, found.removed)
    kept = events.mirrored_after(emply.calendars, plan.changes)
    names = {(c.user_id, c.id): c.name for c in emply.calendars}
    names.update({(str(c.after["userId"]), str(c.after["id"])): c.after.get("name")
                  for c in plan.changes if c.kind == model.CALENDAR_ADD})
    planned = events.plan_events(doc.get("events", ()), kept, reads, users, names)
    return dataclasses.replace(plan, changes=(*plan.changes, *planned.changes),
                               events=planned.writes)


async def apply(store: protocols.SyncStore, loaded: protocols.LoadedEmply, plan: model.Plan,
                read_: EventsRead) -> None:
    """Write the plan's events, then the delta links that match them."""
    writes = plan.events
    if writes is None:
        return
    await store.delete_entities("events", writes.deletes, loaded=loaded)
    await store.write_entities("events", writes.upserts, loaded=loaded)
    entra = {u["id"]: u.get("entraId") for u in loaded.doc.get("users", ())}
    calendars: Links = {}
    for (user_id, calendar_id), count in sorted(writes.counts.items()):
        entra_id = entra.get(user_id)
        if entra_id is None:
            continue
        found = read_.read.calendars.get((entra_id, calendar_id))
        if found is not None:
            calendars.setdefault(entra_id, {})[calendar_id] = [found.delta_link, count]
        else:
            old = read_.links.get(entra_id, {}).get(calendar_id)
            if old is not None and old[1] == count:
                calendars.setdefault(entra_id, {})[calendar_id] = old
    await store.save_state_part(STATE_PART, {"format": FORMAT, "window": list(read_.window),
                                             "calendars": calendars})


