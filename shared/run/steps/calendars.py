"""The calendars step (R13; R17 removes them all): read each synced user's calendars,
then write the calendar changes to the Emply side.

Read, with calendar sync on and the integration enabled: the calendars of the users
linked and active in Emply with their own calendar sync on (`shared.graph.mailboxes`;
a user linked or reactivated by this run gets its calendars at the next run). The
planner turns them into `calendar_add` / `calendar_remove`. A user whose calendars could
not be read keeps them as they are, is an error on that user, and is left alone until its
next try (`shared.run.steps.user_faults`). Applied: events go before
their calendars, and additions last, so a run that stops half-way leaves what is left
for the next run to plan again (removing a calendar twice, or adding one that is there,
is harmless).
"""

from __future__ import annotations

import dataclasses

from shared.graph import mailboxes
from shared.reconcile import convert, model, removal
from shared.run.context import Run
from shared.run.steps import base, user_faults
from shared.store import protocols


def read_of(run: Run) -> mailboxes.CalendarRead | None:
    found = run.reads.get(STEP.name)
    return found if isinstance(found, mailboxes.CalendarRead) else None


class CalendarsStep(base.Step):
    name = "calendars"

    async def read(self, run: Run) -> None:
        if not (run.settings.enabled and run.settings.calendar_sync):
            return
        wanted = await user_faults.skip_waiting(run, user_faults.MAILBOX, (
            convert.calendar_synced_entra_ids(run.doc, run.directory.mirror["users"])))
        found = run.reads[self.name] = await mailboxes.read_calendars(run.deps.graph, wanted)
        # R7: a mailbox Graph would not list is an error on that user, its calendars kept.
        await user_faults.note(run, user_faults.MAILBOX, "calendars", wanted,
                               list(found.failures.values()))

    def plan_input(self, run: Run, entra: model.EntraSnapshot) -> model.EntraSnapshot:
        found = read_of(run)
        if found is None:
            return entra
        return dataclasses.replace(entra, mailboxes=convert.mailboxes(found.mailboxes))

    async def apply(self, run: Run, applied: base.Applied) -> base.StepOutcome:
        changes = applied.pending(model.CALENDAR_KINDS)
        if changes:
            await write_calendars(run.deps.store, run.loaded, changes)
        # Calendars are not in Graph's delta: a run that read them is never reused.
        return base.StepOutcome(self.name, reusable=read_of(run) is None, wrote=len(changes),
                                progress={"calendarChanges": len(changes)})


async def write_calendars(store: protocols.EmplyTables, loaded: protocols.LoadedEmply,
                          changes: list[model.Change]) -> None:
    calendars, events = removal.deletions(changes, loaded.doc.get("events", ()))
    await store.delete_entities("events", events, loaded=loaded)
    await store.delete_entities("calendars", calendars, loaded=loaded)
    added = [dict(c.after) for c in changes if c.kind == model.CALENDAR_ADD]
    await store.write_entities("calendars", added, loaded=loaded)


STEP = CalendarsStep()
