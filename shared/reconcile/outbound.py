"""R15's outbound events as data: Emply's event, what M365 holds of it, and the digests
that tell the two apart (pure, no I/O).

An outbound event's *content* is what M365 shows of it: subject, start, end, location,
body and attendees (`FIELDS`), each normalised (times as UTC instants, attendees by
e-mail ignoring case) so that the same event written twice digests the same. The sync
keeps, per field, the digest of what it last wrote to M365 (`pushed`), so a later run
knows which fields Emply changed since (and PATCHes only those).

Every event the sync creates carries one single-value extended property (the *mark*,
`MARK_PROPERTY`) whose value is `mark_value(event id, content digest)`: the event's
`mark_id` (a UUIDv5 of the Emply id, so a value filter, which Graph applies ignoring
case, can never mix up two ids that differ only in case) and the digest of the content
it was last written with. That is how a run finds the event a lost POST made (filter
on the mark) and knows whether a PATCH or a cancellation it never heard back from took
effect, instead of trusting `transactionId`, which Graph documents only as avoiding
redundant POSTs on client retries (resources/event.md).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Mapping
from typing import Any

FIELDS = ("subject", "start", "end", "location", "body", "attendees")
"""The fields M365 holds of an outbound event (what an update PATCHes)."""

MARK_PROPERTY = "String {d6bef727-754e-4fe0-b5d0-a70259221313} Name EmplyOutboundEvent"
"""The mark's extended property id (a fixed GUID and name: events already marked carry it)."""

_NAMESPACE = uuid.UUID("6f1c3c55-8f0e-4c8e-9a57-3c5e0d2b7a15")
"""Fixed for ever: the marks (and transaction ids) of events already pushed derive from it."""

Attendee = tuple[str, str | None]
"""(e-mail address, display name)."""


@dataclasses.dataclass(frozen=True, slots=True)
class OutboundEvent:
    """An event Emply created for a user, kept in step with its M365 copy (R15)."""

    id: str
    user_id: str
    subject: str | None = None
    start: str = ""
    end: str = ""
    graph_id: str | None = None
    status: str = "pending"
    """What M365 holds: `pending` (nothing settled yet), `created`, `updated`,
    `cancelled`, `deleted` or `failed` (with `reason`)."""
    reason: str | None = None
    """Why it failed or was deleted (a reason code); for a pending one, the last
    transient error."""
    location: str | None = None
    body: str | None = None
    attendees: tuple[Attendee, ...] = ()
    cancelled: bool = False
    """Emply cancelled it: the M365 event is cancelled (attendees told)."""
    delete_requested: bool = False
    """Emply deleted it (DELETE /api/outbound-events/{id}): deleted in M365, then in Emply."""
    pushed: Mapping[str, str] | None = None
    """Per field, the digest of what the sync last wrote to M365 (None: nothing yet, or an
    event created before the sync kept them)."""
    attempted_at: str | None = None
    """A Graph write for it was sent at this time and its answer never stored (the run
    was killed): the next run looks the event up by its mark before anything else."""
    failed_for: str | None = None
    """The `intent_digest` the last failure was for: `failed` is final until Emply
    changes the event."""


@dataclasses.dataclass(frozen=True, slots=True)
class OutboundCopy:
    """What M365 holds of an outbound event, as found by its mark this run."""

    graph_id: str
    digest: str | None
    """The content digest its mark carries (None: a mark without one)."""


def mark_id(event_id: str) -> str:
    """The event's id in its mark (and its `transactionId`): the same for every attempt."""
    return str(uuid.uuid5(_NAMESPACE, f"emply-outbound-event:{event_id}"))


def mark_value(event_id: str, digest: str) -> str:
    return f"{mark_id(event_id)}:{digest}"


def digest_in_mark(value: object) -> str | None:
    """The content digest a mark's value carries, None when it has none."""
    if not isinstance(value, str):
        return None
    _, sep, digest = value.partition(":")
    return digest if sep and digest else None


def utc_instant(moment: str) -> str:
    """An ISO 8601 date-time with a zone as a UTC instant, `YYYY-MM-DDTHH:MM:SS` (how
    Graph is sent it, with `timeZone: UTC`)."""
    at = dt.datetime.fromisoformat(moment.strip().upper()).astimezone(dt.UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S")


def attendees_of(event: OutboundEvent) -> list[dict[str, str]]:
    """The attendees in a fixed order (by e-mail, ignoring case), addresses lower-cased."""
    out = {email.strip().casefold(): name or "" for email, name in event.attendees}
    return [{"email": email, "name": out[email]} for email in sorted(out)]


def content(event: OutboundEvent) -> dict[str, Any]:
    """What M365 should hold of the event, normalised (`FIELDS`)."""
    return {"subject": event.subject or "", "start": utc_instant(event.start),
            "end": utc_instant(event.end), "location": event.location or "",
            "body": event.body or "", "attendees": attendees_of(event)}


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def digests(event: OutboundEvent) -> dict[str, str]:
    """Per field, the digest of what M365 should hold."""
    return {name: _digest(value) for name, value in content(event).items()}


def content_digest(event: OutboundEvent) -> str:
    """One digest of all of it (what the mark carries)."""
    return _digest(content(event))


def changed_fields(event: OutboundEvent, pushed: Mapping[str, str]) -> tuple[str, ...]:
    """The fields whose content differs from what was last written (`pushed`)."""
    now = digests(event)
    return tuple(name for name in FIELDS if pushed.get(name) != now[name])


def intent_digest(event: OutboundEvent) -> str:
    """What Emply asks for, as one digest: the content, cancelled, deleted. A failure is
    final for this value only (`failed_for`)."""
    return _digest([content(event), event.cancelled, event.delete_requested])


def from_entity(item: Mapping[str, Any]) -> OutboundEvent:
    """The planner's view of a stored outbound event (its normalised entity)."""
    return OutboundEvent(
        item["id"], item["userId"], item.get("subject"), item.get("start") or "",
        item.get("end") or "", item.get("graphId"), item.get("status") or "pending",
        item.get("reason") or item.get("lastError"), item.get("location"),
        item.get("body"),
        tuple((str(a["email"]), a.get("name")) for a in item.get("attendees") or ()
              if isinstance(a, Mapping) and isinstance(a.get("email"), str)),
        bool(item.get("cancelled")), bool(item.get("deleteRequested")),
        item.get("pushed") if isinstance(item.get("pushed"), Mapping) else None,
        item.get("attemptedAt"), item.get("failedFor"))


def holds_nothing(item: Mapping[str, Any]) -> bool:
    """Whether M365 surely holds nothing of a stored outbound event: never written (no
    Graph id and no write whose answer was lost), or cancelled or deleted there."""
    if item.get("status") in ("cancelled", "deleted"):
        return True
    return not item.get("graphId") and not item.get("attemptedAt")
