"""Change notifications on a mailbox's events (`users/{id}/events`), as Graph sends them.

A subscription on `users/{id}/events` (change types from `created`, `updated`,
`deleted`; at most 4,230 minutes, Graph's limit for Outlook resources) gets one
notification per event of any of the user's calendars that was created, changed or
deleted: `resource` `Users/{id}/Events/{eventId}`, `resourceData` of type
`#Microsoft.Graph.Event`, and the subscription's `clientState`. Changes come from
`PUT /_sim/tenant` (the events of the old and the new version compared) and from
Graph's own event writes (POST, PATCH, DELETE of an event), delivered once the request
that made them is answered. Graph offers no subscription on a user's calendars
themselves: a calendar created or shared without an event change notifies nothing.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from graph_simulator.tenant import JSON

if TYPE_CHECKING:
    from graph_simulator.state import Simulator

CHANGE_TYPES = frozenset({"created", "updated", "deleted"})
MAX_MINUTES = 4_230
"""Graph's maximum lifetime of a subscription on Outlook events (under three days)."""

Change = tuple[str, str, str]
"""(user id, change type, event id)."""


def mailbox_of(resource: str) -> str | None:
    """The user id of `users/{id}/events` (any case, leading slash or not), else None."""
    parts = resource.strip("/").split("/")
    if len(parts) == 3 and parts[0].lower() == "users" and parts[2].lower() == "events" \
            and parts[1]:
        return parts[1]
    return None


def _fingerprint(event: Any) -> str:
    return hashlib.sha256(json.dumps(event, sort_keys=True, default=str).encode()
                          ).hexdigest()


def _events(calendars: list[JSON] | None) -> dict[str, str]:
    return {str(e["id"]): _fingerprint(e) for cal in calendars or () for e in cal["events"]}


def changed(old: dict[str, list[JSON]], new: dict[str, list[JSON]]) -> list[Change]:
    """The events created, changed or deleted between two versions' mailboxes."""
    out: list[Change] = []
    for uid in sorted(set(old) | set(new)):
        before, after = _events(old.get(uid)), _events(new.get(uid))
        if before == after:
            continue
        out += [(uid, "created", e) for e in sorted(set(after) - set(before))]
        out += [(uid, "updated", e) for e in sorted(set(after) & set(before))
                if after[e] != before[e]]
        out += [(uid, "deleted", e) for e in sorted(set(before) - set(after))]
    return out


def items(sim: Simulator, subscriptions: list[JSON], changes: list[Change]
          ) -> list[tuple[JSON, JSON]]:
    """(subscription, notification) for each live events subscription a change hits."""
    by_mailbox: dict[str, list[JSON]] = {}
    for subscription in subscriptions:
        if subscription.get("_mailbox"):
            by_mailbox.setdefault(str(subscription["_mailbox"]), []).append(subscription)
    tenant = str(sim.current.organization.get("id", ""))
    out = []
    for uid, change, event_id in changes:
        for subscription in by_mailbox.get(uid, ()):
            if change not in str(subscription["changeType"]).split(","):
                continue
            resource = f"Users/{uid}/Events/{event_id}"
            out.append((subscription, {
                "subscriptionId": subscription["id"],
                "subscriptionExpirationDateTime": subscription["expirationDateTime"],
                "changeType": change, "clientState": subscription["clientState"],
                "resource": resource, "tenantId": tenant,
                "resourceData": {"@odata.type": "#Microsoft.Graph.Event",
                                 "@odata.id": resource, "@odata.etag": f'W/"{event_id}"',
                                 "id": event_id}}))
    return out


def record(sim: Simulator, uid: str, change: str, event_id: str) -> None:
    """A Graph write changed an event: notified once the request is answered."""
    if any(s.get("_mailbox") for s in sim.subscriptions.values()):
        sim.pending_event_changes.append((uid, change, event_id))
