"""The event-push step's read (R15): which outbound events to look up in M365 before
planning, and what the look-ups found.

Looked up, one request each (`shared.graph.outbound_requests.lookup`, through `$batch`):

- every outbound event with `attemptedAt`: a run sent a Graph write for it and was
  killed before it stored the answer. By its Graph id when one is stored (did the PATCH
  land? the mark carries the content's digest; is the event still there after the
  cancellation or deletion?), else by its mark (did the POST create it?);
- every created event R14's read of its user's default calendar saw go (removed since
  the last delta round, or missing from a window read in full although inside it):
  deleted by its owner, or only moved out of the window? The look-up tells. R14's read
  is the mailbox pass's, after the plan: it writes down what it saw go
  (`shared.run.mailboxes.gone`), and the next run looks those up.

Nothing else is read: a run with nothing lost and nothing gone sends no request here.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from shared.graph import event_writer, outbound_requests
from shared.reconcile import event_push, outbound
from shared.reconcile.outbound import OutboundCopy
from shared.run.context import Run
from shared.run.mailboxes import gone as gone_records


@dataclasses.dataclass(frozen=True)
class LookupRead:
    found: dict[str, OutboundCopy | None]
    """Outbound event id → its M365 copy (None: not there), for the events looked up."""
    unknown: dict[str, str]
    """Outbound event id → why its look-up gave no answer (tried again next run)."""
    requests: int = 0
    throttled: int = 0
    answered: tuple[tuple[str, str], ...] = ()
    """The pass's records of events seen go that this run settles (`gone.clear` once
    applied): all read but those whose look-up gave no answer."""


async def look_up(run: Run) -> LookupRead | None:
    """The look-ups this run needs, made; None when it needs none."""
    seen = await gone_records.read(run.deps.store.mailbox_states())
    wanted = list(_wanted(run, seen))
    if not wanted:
        return LookupRead({}, {}, answered=tuple(seen)) if seen else None
    sent = await event_writer.send(run.deps.graph, wanted)
    found: dict[str, OutboundCopy | None] = {}
    unknown: dict[str, str] = {}
    for request in wanted:
        answer = sent.answers.get(request.event_id,
                                  event_writer.Answer(None, error="no answer"))
        result = outbound_requests.found(answer)
        if isinstance(result, outbound_requests.Unknown):
            unknown[request.event_id] = result.error
        else:
            found[request.event_id] = result
    users = {u["id"]: u.get("entraId") for u in run.doc.get("users", ())}
    unanswered = {(users.get(o["userId"]), o.get("graphId"))
                  for o in run.doc.get("outboundEvents", ()) if o["id"] in unknown}
    return LookupRead(found, unknown, sent.requests, sent.throttled,
                      tuple(k for k in seen if k not in unanswered))


def _wanted(run: Run, gone: gone_records.Seen) -> Iterable[event_writer.Request]:
    users = {u["id"]: u.get("entraId") for u in run.doc.get("users", ())}
    for item in run.doc.get("outboundEvents", ()):
        entra_id = users.get(item["userId"])
        if not entra_id or item.get("status") in event_push.FINAL_STATUSES:
            continue
        if item.get("attemptedAt") or (
                item.get("graphId") and (entra_id, item["graphId"]) in gone
                and _in_window(item, gone[(entra_id, item["graphId"])])):
            yield outbound_requests.lookup(outbound.from_entity(item), entra_id)


Window = gone_records.Window
"""The window a calendar was read in full in; None: read through its delta link."""


def _in_window(item: Mapping[str, Any], window: Window) -> bool:
    """Whether a full read of `window` should have held the event (a delta removal
    always counts: Graph reports it for an event moved out of the window too)."""
    if window is None:
        return True
    try:
        start = dt.datetime.fromisoformat(str(item["start"]).upper())
        end = dt.datetime.fromisoformat(str(item["end"]).upper())
        low = dt.datetime.fromisoformat(window[0].replace("Z", "+00:00"))
        high = dt.datetime.fromisoformat(window[1].replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return False
    return start < high and end > low
