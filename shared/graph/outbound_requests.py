"""R15's Graph requests for one outbound event, and what Graph's answers to them mean.

- create: `POST /users/{id}/calendar/events` (user-post-events.md) with the event, its
  attendees (Outlook sends them the invitation), Graph's `transactionId`, and the mark:
  a single-value extended property created with the event
  (singlevaluelegacyextendedproperty-post-singlevalueextendedproperties.md) carrying
  the Emply id and the content's digest (`shared.reconcile.outbound`);
- update: `PATCH /users/{id}/events/{gid}` (event-update.md) of the fields that changed,
  and the mark's new digest (a PATCH sets an existing extended property too);
- cancel: `POST /users/{id}/events/{gid}/cancel` (event-cancel.md: only the organizer,
  sends the attendees a cancellation, moves the event to Deleted Items; 202);
- delete: `DELETE /users/{id}/events/{gid}` (event-delete.md; 204);
- look-up: by the mark, `GET /users/{id}/events?$filter=singleValueExtendedProperties/
  Any(ep: ep/id eq '<mark>' and startswith(ep/value, '<mark id>'))` with
  `$expand=singleValueExtendedProperties($filter=id eq '<mark>')` to read the digest
  back (singlevaluelegacyextendedproperty-get.md), for an event whose POST's answer was
  lost; by its Graph id (`GET /users/{id}/events/{gid}`, same `$expand`) for one
  already known.

Times go as UTC (`timeZone: UTC`), the body as text.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from shared.graph import batch_get
from shared.graph.event_writer import Answer, Request
from shared.reconcile import outbound
from shared.reconcile.outbound import OutboundCopy, OutboundEvent

MAILBOX_NOT_IN_CLOUD = "mailbox_not_in_cloud"
CANCEL_COMMENT = "This event was cancelled in Emply."
_EXPAND = quote(f"singleValueExtendedProperties($filter=id eq '{outbound.MARK_PROPERTY}')",
                safe="()'")


def _events(entra_id: str) -> str:
    return f"/users/{quote(entra_id, safe='')}/events"


def _event(entra_id: str, graph_id: str) -> str:
    return f"{_events(entra_id)}/{quote(graph_id, safe='')}"


def _at(moment: str) -> dict[str, str]:
    return {"dateTime": outbound.utc_instant(moment), "timeZone": "UTC"}


def resource(event: OutboundEvent, fields: Iterable[str] = outbound.FIELDS) -> dict[str, Any]:
    """The Graph event's properties for these fields, and the mark with the digest of the
    whole content."""
    values: dict[str, Any] = {
        "subject": event.subject or "",
        "start": _at(event.start),
        "end": _at(event.end),
        "location": {"displayName": event.location or ""},
        "body": {"contentType": "text", "content": event.body or ""},
        "attendees": [{"emailAddress": {"address": a["email"], "name": a["name"] or None},
                       "type": "required"} for a in outbound.attendees_of(event)],
    }
    out = {name: values[name] for name in fields}
    out["singleValueExtendedProperties"] = [{
        "id": outbound.MARK_PROPERTY,
        "value": outbound.mark_value(event.id, outbound.content_digest(event))}]
    return out


def create(event: OutboundEvent, entra_id: str) -> Request:
    body = {**resource(event), "transactionId": outbound.mark_id(event.id)}
    return Request(event.id, entra_id, "POST",
                   f"/users/{quote(entra_id, safe='')}/calendar/events", body)


def update(event: OutboundEvent, entra_id: str, graph_id: str,
           fields: Iterable[str]) -> Request:
    return Request(event.id, entra_id, "PATCH", _event(entra_id, graph_id),
                   resource(event, fields))


def cancel(event: OutboundEvent, entra_id: str, graph_id: str) -> Request:
    return Request(event.id, entra_id, "POST", f"{_event(entra_id, graph_id)}/cancel",
                   {"comment": CANCEL_COMMENT})


def delete(event: OutboundEvent, entra_id: str, graph_id: str) -> Request:
    return Request(event.id, entra_id, "DELETE", _event(entra_id, graph_id))


def lookup(event: OutboundEvent, entra_id: str) -> Request:
    """Find the event's M365 copy: by its Graph id when one is stored, else by its mark."""
    if event.graph_id:
        return Request(event.id, entra_id, "GET",
                       f"{_event(entra_id, event.graph_id)}?$select=id&$expand={_EXPAND}")
    found = quote(f"singleValueExtendedProperties/Any(ep: ep/id eq '{outbound.MARK_PROPERTY}' "
                  f"and startswith(ep/value, '{outbound.mark_id(event.id)}'))", safe="()'")
    return Request(event.id, entra_id, "GET",
                   f"{_events(entra_id)}?$filter={found}&$select=id&$expand={_EXPAND}")


class Unknown:
    """A look-up Graph did not answer usably: what M365 holds is not known this run."""

    def __init__(self, error: str) -> None:
        self.error = error


def found(answer: Answer) -> OutboundCopy | Unknown | None:
    """What a look-up's answer says M365 holds."""
    body = answer.body
    if answer.status == 200 and isinstance(body, dict):
        items = body.get("value") if "value" in body else [body]
        if isinstance(items, list):
            for item in items:
                if isinstance(item, dict) and isinstance(item.get("id"), str):
                    return OutboundCopy(item["id"], _digest(item))
            return None
    if answer.status == 404 and batch_get.error_of(body)[0] == "ErrorItemNotFound":
        return None
    return Unknown(describe("GET /users/{id}/events", answer))


def _digest(item: dict[str, Any]) -> str | None:
    for prop in item.get("singleValueExtendedProperties") or ():
        if isinstance(prop, dict) and prop.get("id") == outbound.MARK_PROPERTY:
            return outbound.digest_in_mark(prop.get("value"))
    return None


@dataclass(frozen=True)
class Outcome:
    graph_id: str | None = None
    """Done; for a create, the new event's id."""
    done: bool = False
    gone: bool = False
    """Graph answered ErrorItemNotFound: the event is not in M365 (any more)."""
    failure: str | None = None
    """Failed for good: the reason code."""
    error: str | None = None
    """A temporary error: what went wrong (the next run tries again)."""


def outcome(request: Request, answer: Answer) -> Outcome:
    """What Graph's answer to a write means."""
    status, body = answer.status, answer.body
    code = batch_get.error_of(body)[0]
    if status in (200, 201, 202, 204):
        graph_id = body.get("id") if isinstance(body, dict) else None
        if _is_create(request) and not (isinstance(graph_id, str) and graph_id):
            return Outcome(error=describe(_name(request), answer, "no event id in the answer"))
        return Outcome(graph_id=graph_id if isinstance(graph_id, str) else None, done=True)
    if status == 404 and code == "MailboxNotEnabledForRESTAPI":
        return Outcome(failure=MAILBOX_NOT_IN_CLOUD)
    if status == 404 and code == "ErrorItemNotFound" and not _is_create(request):
        return Outcome(gone=True)
    return Outcome(error=describe(_name(request), answer))


def _is_create(request: Request) -> bool:
    return request.method == "POST" and not request.url.endswith("/cancel")


def _name(request: Request) -> str:
    if _is_create(request):
        return "POST /users/{id}/calendar/events"
    suffix = "/cancel" if request.url.endswith("/cancel") else ""
    return f"{request.method} /users/{{id}}/events/{{id}}{suffix}"


def describe(name: str, answer: Answer, detail: str | None = None) -> str:
    if answer.status is None:
        return f"{name}: {answer.error or 'no answer'}"
    code, message = batch_get.error_of(answer.body)
    hint = " (the app registration needs Calendars.ReadWrite)" if answer.status == 403 else ""
    return (f"{name}: HTTP {answer.status}, error code {code or 'unknown'}: "
            f"{detail or message or 'no message'}{hint}")
