"""Writing a plan's calendar changes (R13, R17) to the Emply side.

Events go before their calendars, and additions last: a run that stops half-way
leaves what is left for the next run to plan again (removing a calendar twice, or
adding one that is there, is harmless).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared import store as store_mod
from shared.reconcile import model, removal


def touches_calendars(plan: model.Plan) -> bool:
    return any(c.kind in model.CALENDAR_KINDS for c in plan.changes)


async def apply_calendars(store: store_mod.EmplyStore, doc: Mapping[str, Any],
                          plan: model.Plan) -> None:
    calendars, events = removal.deletions(plan, doc.get("events", ()))
    await store.delete_entities("events", events)
    await store.delete_entities("calendars", calendars)
    added = [dict(c.after) for c in plan.changes if c.kind == model.CALENDAR_ADD]
    await store.upsert_entities("calendars", added)
