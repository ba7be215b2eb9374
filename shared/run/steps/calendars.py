"""Writing a plan's calendar changes (R13, R17) to the Emply side.

Events go before their calendars, and additions last: a run that stops half-way
leaves what is left for the next run to plan again (removing a calendar twice, or
adding one that is there, is harmless).
"""

from __future__ import annotations

from shared.reconcile import model, removal
from shared.store import protocols


def touches_calendars(plan: model.Plan) -> bool:
    return any(c.kind in model.CALENDAR_KINDS for c in plan.changes)


async def apply_calendars(store: protocols.EmplyTables, loaded: protocols.LoadedEmply,
                          plan: model.Plan) -> None:
    calendars, events = removal.deletions(plan, loaded.doc.get("events", ()))
    await store.delete_entities("events", events, loaded=loaded)
    await store.delete_entities("calendars", calendars, loaded=loaded)
    added = [dict(c.after) for c in plan.changes if c.kind == model.CALENDAR_ADD]
    await store.write_entities("calendars", added, loaded=loaded)
