"""Emply sending an outbound event again (R15): what the sync knows of it is kept.

Emply sends its own fields (subject, start, end, location, body, attendees, cancelled);
the sync's (`SYNC_FIELDS`: the Graph id, what M365 holds, the digests of what was
written, a write whose answer was lost) are its memory of the M365 event. A PUT or an
import that leaves them out keeps the stored ones, so an event moved or cancelled in
Emply updates or cancels its M365 event instead of creating a second one. A field the
body gives wins (an export edited and imported again carries them all; Emply sends
`status: pending` to retry a failed event).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.store import protocols

SYNC_FIELDS = ("graphId", "status", "reason", "lastError", "pushed", "attemptedAt",
               "failedFor")


def keep_sync_fields(stored: Mapping[str, Any], incoming: Mapping[str, Any]) -> dict[str, Any]:
    """`incoming` with the sync's fields it leaves out taken from `stored`."""
    kept = {name: stored[name] for name in SYNC_FIELDS
            if name not in incoming and stored.get(name) is not None}
    return {**incoming, **kept}


async def keep_in_document(store: protocols.EmplyTables, doc: object) -> object:
    """An import's document with `keep_sync_fields` applied to each outbound event that
    is stored already (anything malformed is left for the document's checks)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("outboundEvents"), list):
        return doc
    events = doc["outboundEvents"]
    ids = [e["id"] for e in events if isinstance(e, dict) and isinstance(e.get("id"), str)]
    if not ids:
        return doc
    stored = await store.read_entities("outboundEvents", ids)
    kept = [keep_sync_fields(stored[e["id"]], e)
            if isinstance(e, dict) and isinstance(e.get("id"), str) and e["id"] in stored
            else e for e in events]
    return {**doc, "outboundEvents": kept}
