"""Writing events: create, update, cancel, delete (R15's traffic).

- `POST /users/{id}/calendar/events` (and `/events`, `/calendars/{cid}/events`):
  201 with the event. Its `singleValueExtendedProperties` are kept beside it
  (`graph_simulator.event_extras`), never in its output; `transactionId` is kept in it
  (Graph returns it once set) and a POST repeating one within the window answers the
  event the first one made. Attendees get an invitation.
- `PATCH /users/{id}/events/{eid}`: 200 with the event; properties given replace
  (extended properties by id); `id` and `transactionId` cannot be changed. A change of
  what attendees see sends them an update.
- `POST /users/{id}/events/{eid}/cancel` (event-cancel.md): 202, no body; the
  attendees get a cancellation with the `comment`, and the event goes to Deleted Items
  (out of every calendar, so reads and delta no longer see it).
- `DELETE /users/{id}/events/{eid}` (event-delete.md): 204; a meeting's attendees get a
  cancellation.

Each write is recorded for the mailbox's change notifications
(`graph_simulator.event_notifications`).

An unknown event is 404 ErrorItemNotFound, a mailbox not in the cloud 404
MailboxNotEnabledForRESTAPI, a calendar without edit rights 403 ErrorAccessDenied.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from graph_simulator import calendars, event_extras, event_notifications, odata
from graph_simulator.directory import user_id
from graph_simulator.protocol import GraphError, Req, Resp, body_object, now
from graph_simulator.tenant import JSON

if TYPE_CHECKING:
    from graph_simulator.state import Simulator

SEEN_BY_ATTENDEES = ("subject", "start", "end", "location", "body", "attendees")
"""What a PATCH changes for the attendees (they get an update when one of these does)."""


def _response(req: Req, status: int, event: JSON) -> Resp:
    return Resp(status, {"@odata.context": odata.context(req, "events/$entity", None),
                         **event})


def create_event(sim: Simulator, req: Req) -> Resp:
    body = body_object(req)
    cal = calendars.calendar_of(sim, req)
    if cal.get("canEdit") is False:
        raise GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials "
                         "and try again.")
    calendars.check_event_window(body)
    event_extras.check_attendees(body.get("attendees"))
    props = event_extras.properties_of(body)
    user = user_id(sim, req)
    txn = body.get("transactionId")
    if isinstance(txn, str) and txn:
        earlier = event_extras.remembered(sim, user, txn)
        for c in calendars.mailbox(sim, req):
            for event in c["events"]:
                if event["id"] == earlier:
                    return _response(req, 201, event)
    event = {k: v for k, v in body.items()
             if k not in ("id", "singleValueExtendedProperties")}
    event["id"] = "AAMk" + secrets.token_urlsafe(24)
    event["iCalUId"] = "040000008200E00074C5B7101A82E008" + secrets.token_hex(16)
    event["createdDateTime"] = event["lastModifiedDateTime"] = now()
    event.setdefault("showAs", "busy")
    event.setdefault("sensitivity", "normal")
    cal["events"].append(event)
    if props:
        event_extras.extras(sim).properties[event["id"]] = props
    if isinstance(txn, str) and txn:
        event_extras.remember(sim, user, txn, event["id"])
    event_extras.send(sim, "invitation", user, event)
    event_notifications.record(sim, user, "created", event["id"])
    return _response(req, 201, event)


def patch_event(sim: Simulator, req: Req) -> Resp:
    body = body_object(req)
    cal, event = calendars.find_event(sim, req)
    for read_only in ("id", "transactionId"):
        if read_only in body and body[read_only] != event.get(read_only):
            raise GraphError(400, "ErrorInvalidPropertyUpdateSentAsPatch",
                             f"The property '{read_only}' is read-only.")
    event_extras.check_attendees(body.get("attendees"))
    props = event_extras.properties_of(body)
    changes = {k: v for k, v in body.items() if k != "singleValueExtendedProperties"}
    merged = {**event, **changes, "lastModifiedDateTime": now()}
    calendars.check_event_window(merged)
    cal["events"] = [merged if e is event else e for e in cal["events"]]
    if props:
        event_extras.extras(sim).properties.setdefault(merged["id"], {}).update(props)
    if any(merged.get(k) != event.get(k) for k in SEEN_BY_ATTENDEES):
        event_extras.send(sim, "update", user_id(sim, req), merged)
    event_notifications.record(sim, user_id(sim, req), "updated", merged["id"])
    return _response(req, 200, merged)


def _remove(sim: Simulator, req: Req) -> JSON:
    cal, event = calendars.find_event(sim, req)
    cal["events"] = [e for e in cal["events"] if e is not event]
    event_extras.extras(sim).properties.pop(str(event["id"]), None)
    event_notifications.record(sim, user_id(sim, req), "deleted", event["id"])
    return event


def delete_event(sim: Simulator, req: Req) -> Resp:
    event = _remove(sim, req)
    event_extras.send(sim, "cancellation", user_id(sim, req), event)
    return Resp(204)


def cancel_event(sim: Simulator, req: Req) -> Resp:
    body = req.body if isinstance(req.body, dict) else {}
    comment = body.get("comment", body.get("Comment"))
    if comment is not None and not isinstance(comment, str):
        raise GraphError(400, "ErrorInvalidRequest", "The comment must be a string.")
    event = _remove(sim, req)
    event_extras.send(sim, "cancellation", user_id(sim, req), event, comment)
    return Resp(202)
