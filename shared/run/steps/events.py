"""The events step (R14): read the mirrored calendars' events, then write them.

The delta links live in the sync's own state, in the part "events"::

    state-events.json.gz  {"format": 1, "window": [start, end],
                           "calendars": {entraId: {calendarId: [deltaLink, events]}}}

`events` is how many events the calendar had in Emply once the link's round was
applied. A link is used only when the window is the stored one (a new day moves the
window: every calendar is read in full, which drops the events that left it and
reads the new days) and Emply still holds that many events of the calendar (an
import, or a run with the integration removed, changed them: read in full). The
part is written only after a run applied its plan (never by a dry run), so a failed
run reads the same changes again. Reads need the calendars step's read (which
calendars are mirrored), so this step comes after it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from shared.graph import events as graph_events
from shared.graph import mailboxes
from shared.reconcile import events, model
from shared.run.context import Run
from shared.run.steps import base, user_faults
from shared.run.steps import calendars as calendar_step

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

    @property
    def requests(self) -> int:
        return self.read.requests

    @property
    def throttled(self) -> int:
        return self.read.throttled


def read_of(run: Run) -> EventsRead | None:
    found = run.reads.get(STEP.name)
    return found if isinstance(found, EventsRead) else None


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


class EventsStep(base.Step):
    name = "events"

    def __init__(self, *, keep_others: bool = False) -> None:
        self.keep_others = keep_others
        """An on-demand run: the links of the calendars it did not read are kept as
        stored (a full run's read every mirrored calendar and replaces them all)."""

    async def read(self, run: Run) -> None:
        listed = calendar_step.read_of(run)
        if listed is None:
            return
        start, end = events.window(run.started, run.settings)
        window = (events.iso(start), events.iso(end))
        links = stored_links(await run.deps.store.load_state_part(STATE_PART), window)
        asked = wanted(run.doc, listed.mailboxes, links)
        found = await graph_events.read_events(run.deps.graph, asked, window)
        run.reads[self.name] = EventsRead(window, found, links)
        # R7: a calendar whose events Graph would not give is an error on its user; its
        # events are kept as they are, and its mailbox is left alone until its next try.
        await user_faults.note(run, user_faults.MAILBOX, "events", {w.entra_id for w in asked},
                               list(found.failures.values()), items=len(asked))

    def plan_input(self, run: Run, entra: model.EntraSnapshot) -> model.EntraSnapshot:
        found = read_of(run)
        if found is None:
            return entra
        return dataclasses.replace(entra, events={
            key: None if calendar is None else model.CalendarEvents(
                calendar.full, calendar.events, calendar.removed)
            for key, calendar in found.read.calendars.items()})

    async def apply(self, run: Run, applied: base.Applied) -> base.StepOutcome:
        found = read_of(run)
        writes = applied.plan.events
        if found is None or writes is None:
            return base.StepOutcome(self.name)
        store, loaded = run.deps.store, run.loaded
        await store.delete_entities("events", writes.deletes, loaded=loaded)
        await store.write_entities("events", writes.upserts, loaded=loaded)
        links = _links(run, found, writes.counts)
        if self.keep_others:
            read = {entra_id for entra_id, _ in found.read.calendars}
            links = {**{u: c for u, c in found.links.items() if u not in read}, **links}
        await store.save_state_part(STATE_PART, {
            "format": FORMAT, "window": list(found.window), "calendars": links})
        return base.StepOutcome(self.name, reusable=False, progress={
            "eventsWritten": len(writes.upserts), "eventsDeleted": len(writes.deletes)})


def _links(run: Run, found: EventsRead, counts: Mapping[tuple[str, str], int]) -> Links:
    """The delta links that match the events now written, per calendar."""
    entra = {u["id"]: u.get("entraId") for u in run.doc.get("users", ())}
    calendars: Links = {}
    for (user_id, calendar_id), count in sorted(counts.items()):
        entra_id = entra.get(user_id)
        if entra_id is None:
            continue
        read = found.read.calendars.get((entra_id, calendar_id))
        if read is not None:
            calendars.setdefault(entra_id, {})[calendar_id] = [read.delta_link, count]
        else:
            old = found.links.get(entra_id, {}).get(calendar_id)
            if old is not None and old[1] == count:
                calendars.setdefault(entra_id, {})[calendar_id] = old
    return calendars


STEP = EventsStep()
PER_USER = EventsStep(keep_others=True)
"""An on-demand run's: it reads one user's calendars and keeps everyone else's links."""
