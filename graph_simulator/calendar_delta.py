"""`GET /users/{id}/calendars/{cid}/calendarView/delta`: event change tracking (R14).

Graph's shape: the first request names the window (`startDateTime`, `endDateTime`,
both required) and gets every event of the window, paged with `@odata.nextLink`
(`$skiptoken`), the last page carrying `@odata.deltaLink` (`$deltatoken`). A round
started from a delta token reports only what changed in that window since: new and
changed events in full, deleted and cancelled events (and events moved out of the
window) as `{"id", "@removed": {"reason": "deleted"}}`. The window is the one of
the first request; a delta request's own window parameters are ignored.

Events are edited in place (they take no part in directory versions), so a delta
token names a *sync state* kept here: the window and a fingerprint per event the
client has seen. States are content-addressed, so a round that finds nothing new
hands back the same token. Tokens are opaque, carry the simulator nonce and token
epoch: an unknown, mangled or expired (`/_sim/expire-delta-tokens`) one answers 410
`SyncStateNotFound`. Private events are served as Graph serves them to an
application: in full, with `sensitivity: private` (keeping only start, end and
showAs is the client's business).

Two of Graph's habits can be switched on (`graph_simulator.quirks`): an empty first
page with a nextLink (`emptyFirstPages`), and a calendar that pages forever, each
page linking to the same page again (a user's `loopingCalendars`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from graph_simulator import odata
from graph_simulator.calendars import query_window
from graph_simulator.directory import user_id
from graph_simulator.protocol import GraphError, Req, Resp, decode_token, encode_token
from graph_simulator.tenant import (
    JSON,
    event_for_output,
    event_in_window,
    parse_graph_datetime,
)

if TYPE_CHECKING:
    from graph_simulator.state import Simulator

DEFAULT_PAGE = 10
"""Events a page holds unless `Prefer: odata.maxpagesize` asks otherwise."""
MAX_ROUNDS = 10_000
"""Paged rounds kept for their `$skiptoken`s (oldest dropped first)."""
MAX_STATES = 200_000
"""Sync states kept for their `$deltatoken`s (oldest dropped first: its token then
answers 410, as an expired one does on Graph)."""


@dataclass(frozen=True)
class SyncState:
    """What a delta token stands for: the calendar, the window, and the events seen."""

    user: str
    calendar: str
    start: datetime
    end: datetime
    seen: Mapping[str, str]
    """Event id → fingerprint of the event as last served."""


@dataclass
class Round:
    """A paged round: its items and the state its deltaLink names."""

    items: list[JSON]
    state_id: str


def sync_state_not_found() -> GraphError:
    return GraphError(410, "SyncStateNotFound",
                      "The sync state is not found or has expired; start a new full "
                      "synchronization.")


def _fingerprint(event: Mapping[str, Any]) -> str:
    text = json.dumps(event, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _state_id(state: SyncState) -> str:
    text = json.dumps([state.user, state.calendar, state.start.isoformat(),
                       state.end.isoformat(), sorted(state.seen.items())],
                      separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _window(req: Req) -> tuple[datetime, datetime]:
    start, end = query_window(req)
    if end <= start:
        raise GraphError(400, "ErrorInvalidParameter",
                         "The endDateTime must be after the startDateTime.")
    return start, end


def _token_data(sim: Simulator, raw: str, tag: str) -> dict[str, Any]:
    data = decode_token(raw)
    if (data is None or data.get("n") != sim.nonce or data.get("e") != sim.token_epoch
            or data.get("k") != "calendarView" or data.get("t") != tag):
        raise sync_state_not_found()
    return data


def _current(sim: Simulator, user: str, calendar: str, start: datetime, end: datetime
             ) -> dict[str, JSON]:
    """The calendar's events in the window now, as served, by id (cancelled ones left out:
    a cancelled event is reported removed)."""
    calendars = sim.current.calendars.get(user)
    if calendars is None:
        raise GraphError(404, "MailboxNotEnabledForRESTAPI",
                         "The mailbox is either inactive, soft-deleted, or is hosted "
                         "on-premise.")
    for cal in calendars:
        if cal["id"] == calendar:
            return {e["id"]: event_for_output(e) for e in cal["events"]
                    if not e.get("isCancelled") and event_in_window(e, start, end)}
    raise GraphError(404, "ErrorItemNotFound",
                     "The specified object was not found in the store.")


def _sort_key(event: Mapping[str, Any]) -> tuple[datetime, str]:
    return parse_graph_datetime(event.get("start"), "start"), str(event["id"])


def calendar_view_delta(sim: Simulator, req: Req) -> Resp:
    size, applied = odata.page_size(req, DEFAULT_PAGE)
    user, calendar = user_id(sim, req), req.params["cid"]
    link_base = f"{req.base}/users/{user}/calendars/{calendar}/calendarView/delta"
    base = {"n": sim.nonce, "e": sim.token_epoch, "k": "calendarView"}
    if "$skiptoken" in req.query:
        data = _token_data(sim, req.query["$skiptoken"], "s")
        found = sim.event_rounds.get(str(data.get("r")))
        offset = data.get("o")
        if found is None or not isinstance(offset, int):
            raise sync_state_not_found()
        size = int(data.get("p") or size) if not applied else size
        round_id, items, state_id = str(data["r"]), found.items, found.state_id
    else:
        offset = 0
        items, state_id, round_id = _new_round(sim, req, user, calendar)
        if len(items) > size:
            _keep_round(sim, round_id, Round(items, state_id))
    body: JSON = {"@odata.context": odata.context(req, "events", None)}

    def skip_link(at: int) -> str:
        token = encode_token({**base, "t": "s", "r": round_id, "o": at, "p": size})
        return f"{link_base}?$skiptoken={token}"

    looping = calendar in sim.quirks.user(user).looping_calendars
    if looping or (sim.quirks.empty_first_pages and "$skiptoken" not in req.query):
        # graph_simulator.quirks: an empty first page, or a calendar whose every page
        # links to the same page again.
        _keep_round(sim, round_id, Round(items, state_id))
        body["value"] = items[offset:offset + size] if looping or offset else []
        body["@odata.nextLink"] = skip_link(0)
    elif offset + size < len(items):
        body["value"] = items[offset:offset + size]
        body["@odata.nextLink"] = skip_link(offset + size)
    else:
        body["value"] = items[offset:offset + size]
        sim.event_rounds.pop(round_id, None)
        body["@odata.deltaLink"] = (
            f"{link_base}?$deltatoken={encode_token({**base, 't': 'd', 's': state_id})}")
    return odata.with_preference(Resp(200, body), applied, size)


def _keep_round(sim: Simulator, round_id: str, found: Round) -> None:
    if round_id not in sim.event_rounds and len(sim.event_rounds) >= MAX_ROUNDS:
        sim.event_rounds.pop(next(iter(sim.event_rounds)))
    sim.event_rounds[round_id] = found


def _new_round(sim: Simulator, req: Req, user: str, calendar: str
               ) -> tuple[list[JSON], str, str]:
    """(items, sync state id, round id) of a round started from a delta token or a window."""
    if "$deltatoken" in req.query:
        data = _token_data(sim, req.query["$deltatoken"], "d")
        old = sim.event_states.get(str(data.get("s")))
        if old is None or (old.user, old.calendar) != (user, calendar):
            raise sync_state_not_found()
        start, end, seen = old.start, old.end, old.seen
    else:
        start, end = _window(req)
        seen = {}
    now = _current(sim, user, calendar, start, end)
    fingerprints = {eid: _fingerprint(e) for eid, e in now.items()}
    items = [now[eid] for eid in sorted(now, key=lambda i: _sort_key(now[i]))
             if seen.get(eid) != fingerprints[eid]]
    items += [{"id": eid, "@removed": {"reason": "deleted"}}
              for eid in sorted(seen) if eid not in now]
    state = SyncState(user, calendar, start, end, fingerprints)
    state_id = _state_id(state)
    if state_id not in sim.event_states and len(sim.event_states) >= MAX_STATES:
        sim.event_states.pop(next(iter(sim.event_states)))
    sim.event_states[state_id] = state
    return items, state_id, state_id + ":" + str(len(sim.event_rounds))
