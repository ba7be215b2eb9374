"""What Outlook keeps of an event beside its properties: its single-value extended
properties, the `transactionId`s it remembers, and the messages its writes sent.

- Extended properties (resources/singlevaluelegacyextendedproperty.md) are set by a
  POST or PATCH of the event (`singleValueExtendedProperties`: `[{id, value}]`) and are
  never part of the event's own output: they come back only with `$expand`
  (`graph_simulator.event_query`). Their ids are checked the way Graph spells them:
  `{type} {guid} Name {name}` or `{type} 0x{tag}`.
- `transactionId` (resources/event.md): "A custom identifier specified by a client app
  for the server to avoid redundant POST operations in case of client retries to
  create the same event". That is all Graph promises, so a POST repeating one is
  answered with the first event only within `window` seconds of it (default
  `TRANSACTION_WINDOW_SECONDS`, `PUT /_sim/transaction-window` changes it; 0: never):
  a client that relies on it beyond a retry gets a second event, as it could on Graph.
- Messages: the organizer's writes to a meeting (an event with attendees) send the
  attendees an invitation (create), an update (a PATCH of its time, place, subject,
  body or attendees) or a cancellation (`cancel`, or a DELETE), logged here for tests
  (`GET /_sim/mail`, `graph_simulator.event_control`).

Kept per `Simulator` without touching its state: `extras(sim)`.
"""

from __future__ import annotations

import dataclasses
import re
import time
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from graph_simulator.protocol import bad_request
from graph_simulator.tenant import JSON

if TYPE_CHECKING:
    from graph_simulator.state import Simulator

TRANSACTION_WINDOW_SECONDS = 60.0
PROPERTY_ID = re.compile(
    r"^(String|Integer|Boolean|Binary|SystemTime|CLSID|Double|Currency|Short|Long)"
    r"( \{[0-9A-Fa-f-]{36}\} (Name \S.*|Id 0x[0-9A-Fa-f]{1,4})| 0x[0-9A-Fa-f]{1,4})$")


@dataclasses.dataclass
class EventExtras:
    properties: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)
    """Event id → its extended properties (id → value)."""
    transactions: dict[tuple[str, str], tuple[str, float]] = dataclasses.field(
        default_factory=dict)
    """(user id, transactionId) → (the event it created, when)."""
    window: float = TRANSACTION_WINDOW_SECONDS
    mail: list[JSON] = dataclasses.field(default_factory=list)
    clock: Callable[[], float] = time.monotonic


_EXTRAS: weakref.WeakKeyDictionary[Simulator, EventExtras] = weakref.WeakKeyDictionary()


def extras(sim: Simulator) -> EventExtras:
    found = _EXTRAS.get(sim)
    if found is None:
        found = _EXTRAS[sim] = EventExtras()
    return found


def properties_of(body: Mapping[str, Any]) -> dict[str, str] | None:
    """The extended properties a POST or PATCH body sets (None: it sets none); 400 for
    a malformed one, as Graph answers."""
    raw = body.get("singleValueExtendedProperties")
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise bad_request("singleValueExtendedProperties must be a collection.",
                          "ErrorInvalidRequest")
    out: dict[str, str] = {}
    for prop in raw:
        if not isinstance(prop, dict) or not isinstance(prop.get("id"), str) \
                or not PROPERTY_ID.match(prop["id"]) or not isinstance(prop.get("value"), str):
            raise bad_request("The extended property id or value is invalid.",
                              "ErrorInvalidProperty")
        out[prop["id"]] = prop["value"]
    return out


def remembered(sim: Simulator, user: str, transaction_id: str) -> str | None:
    """The event a POST with this transactionId made within the window, if any."""
    found = extras(sim).transactions.get((user, transaction_id))
    state = extras(sim)
    if found is None or state.clock() - found[1] >= state.window:
        return None
    return found[0]


def remember(sim: Simulator, user: str, transaction_id: str, event_id: str) -> None:
    state = extras(sim)
    state.transactions[(user, transaction_id)] = (event_id, state.clock())


def send(sim: Simulator, kind: str, user: str, event: Mapping[str, Any],
         comment: str | None = None) -> None:
    """Log the message a meeting's write sends its attendees (none without attendees)."""
    to = [str(a["emailAddress"]["address"]) for a in event.get("attendees") or ()]
    if to:
        extras(sim).mail.append({"kind": kind, "userId": user, "eventId": event["id"],
                                 "subject": event.get("subject"), "to": to,
                                 "comment": comment})


def check_attendees(value: object) -> None:
    """Graph's shape of `attendees`: each with an `emailAddress.address` and a `type`."""
    if value is None:
        return
    if not isinstance(value, list) or not all(
            isinstance(a, dict) and isinstance(a.get("emailAddress"), dict)
            and isinstance(a["emailAddress"].get("address"), str)
            and a.get("type", "required") in ("required", "optional", "resource")
            for a in value):
        raise bad_request("Attendees must each have an emailAddress with an address.",
                          "ErrorInvalidRequest")
