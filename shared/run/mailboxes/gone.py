"""The sync's own events (R15's outbound events) the mailbox pass saw go.

R15 reports an event its owner deleted in M365 (`deleted_in_m365`) instead of creating
it again; it learns of one from R14's read of the user's default calendar (the event
reported removed by a delta round, or missing from a window read in full although
inside it) and then looks it up by its mark (`shared.run.steps.outbound_lookups`). R14's
read is the mailbox pass's, which runs after the one plan (and, with shards on the
queue, after the run): so the pass writes down what it saw go, one record per event in
its table's partition `gone`, and the event-push step of the next run looks those up
(a run with such records does not reuse the last outcome: `pending`). A record goes
once its look-up has an answer (`clear`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from shared.graph import events as graph_events
from shared.store import protocols

PARTITION = "gone"
Window = tuple[str, str] | None
"""The window the default calendar was read in full in; None: through its delta link."""
Seen = dict[tuple[str, str], Window]
"""(Entra id, Graph id) → how the event was seen go."""


def seen_gone(listed: Mapping[str, list[dict[str, Any]] | None], read: graph_events.EventRead,
              own: Mapping[str, frozenset[str]], window: tuple[str, str]) -> Seen:
    """The sync's own events (`own`: Entra id → Graph ids) that the read of each user's
    default calendar saw go."""
    out: Seen = {}
    for entra_id, ids in own.items():
        default = next((str(c["id"]) for c in listed.get(entra_id) or ()
                        if c.get("isDefaultCalendar") is True), None)
        found = read.calendars.get((entra_id, default or ""))
        if not ids or found is None:
            continue
        if found.full:
            there = {str(e.get("id")) for e in found.events}
            out.update(((entra_id, g), window) for g in sorted(ids - there))
        else:
            out.update(((entra_id, g), None) for g in found.removed if g in ids)
    return out


def _key(entra_id: str, graph_id: str) -> str:
    return f"{entra_id}|{graph_id}"


async def record(states: protocols.MailboxStates, seen: Seen) -> None:
    for (entra_id, graph_id), window in sorted(seen.items()):
        await states.put_record(PARTITION, _key(entra_id, graph_id), {
            "entraId": entra_id, "graphId": graph_id,
            "window": list(window) if window else None})


async def read(states: protocols.MailboxStates) -> Seen:
    """What the pass saw go and no look-up has answered yet."""
    out: Seen = {}
    for value, _etag in (await states.read_records(PARTITION)).values():
        entra_id, graph_id, window = value.get("entraId"), value.get("graphId"), \
            value.get("window")
        if not (isinstance(entra_id, str) and isinstance(graph_id, str)):
            continue
        out[(entra_id, graph_id)] = (str(window[0]), str(window[1])) if isinstance(
            window, list) and len(window) == 2 else None
    return out


async def pending(states: protocols.MailboxStates) -> bool:
    return bool(await states.read_records(PARTITION))


async def clear(states: protocols.MailboxStates, answered: Iterable[tuple[str, str]]) -> None:
    for entra_id, graph_id in sorted(set(answered)):
        await states.delete_record(PARTITION, _key(entra_id, graph_id))
