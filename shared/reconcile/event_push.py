"""R15: Emply-created (outbound) events, created in the user's default M365 calendar.

FAQ ("How do I synchronize the calendar with MS365?"): "When the synchronization is
activated the data can be used in Emply's calendar functionality. Additionally, Emply
can create events in the MS365 calendar."

Each outbound event whose status is not final (`pending`) is planned once per run:

- `event_push` / `outbound_event`: the user is linked and active, calendar sync is on
  (the setting and the user's flag) and its mailbox is not known to be off the cloud:
  the event is created in the user's default calendar, with Graph's `transactionId`
  derived from the event's id (`transaction_id`), so a retried or repeated POST never
  makes a second event;
- `event_push` / `already_created`: it carries a Graph id already (never POSTed again),
  only its status is set to `created`;
- `event_push` with a failure reason, status `failed` (final: never retried, so no
  retry loop): `user_not_linked`, `user_deactivated`, `calendar_sync_off`,
  `mailbox_not_in_cloud`.

A user linked by this very run is left pending (its mailbox is read from the next run
on). With the integration removed (R17) nothing is planned: pushes stop, events stay
pending. `created` and `failed` events are never planned again.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping

from shared.reconcile import calendars, model

OUTBOUND_EVENT = "outbound_event"
ALREADY_CREATED = "already_created"
USER_NOT_LINKED = "user_not_linked"
USER_DEACTIVATED = "user_deactivated"
FAILURE_REASONS = frozenset({USER_NOT_LINKED, USER_DEACTIVATED, model.CALENDAR_SYNC_OFF,
                             model.MAILBOX_NOT_IN_CLOUD})

FINAL_STATUSES = frozenset({"created", "failed"})

_NAMESPACE = uuid.UUID("6f1c3c55-8f0e-4c8e-9a57-3c5e0d2b7a15")
"""Fixed for ever: the transaction ids of events already pushed derive from it."""


def transaction_id(event_id: str) -> str:
    """Graph's `transactionId` for an outbound event: the same for every attempt."""
    return str(uuid.uuid5(_NAMESPACE, f"emply-outbound-event:{event_id}"))


def push_changes(
    emply: model.EmplySnapshot,
    mailboxes: Mapping[str, tuple[model.EntraCalendar, ...] | None] | None,
    settings: model.Settings,
    deactivated: Collection[str],
    linked_now: Collection[str] = (),
) -> list[model.Change]:
    """The R15 changes, by event id. `deactivated`: users this run deactivates;
    `linked_now`: users this run links (left pending until the next run)."""
    if not settings.enabled:
        return []
    users = {u.id: u for u in emply.users}
    changes: list[model.Change] = []
    for event in sorted(emply.outbound, key=lambda o: o.id):
        if event.status in FINAL_STATUSES:
            continue
        user = users.get(event.user_id)
        entra_id = user.entra_id if user is not None else None
        if event.graph_id is not None:
            changes.append(_change(event, entra_id, ALREADY_CREATED, {
                "status": "created", "graphId": event.graph_id},
                f"outbound event {event.id!r} was created in Graph already (graphId "
                f"{event.graph_id}); it is not created again, only marked created"))
            continue
        if user is not None and user.id in linked_now and user.id not in deactivated:
            continue
        failed = why_not(user, settings, deactivated, mailboxes)
        if failed is not None:
            reason, words = failed
            changes.append(_change(event, entra_id, reason, {
                "status": "failed", "reason": reason},
                f"outbound event {event.id!r} is not created in M365 ({reason}): {words}; "
                "it is marked failed and not retried"))
            continue
        changes.append(_change(event, entra_id, OUTBOUND_EVENT, {
            "userId": event.user_id, "subject": event.subject, "start": event.start,
            "end": event.end, "transactionId": transaction_id(event.id),
            "status": "created"},
            f"outbound event {event.subject or event.id!r} is created in the user's "
            "default M365 calendar (once: Graph's transactionId is derived from its id)"))
    return changes


def why_not(
    user: model.EmplyUser | None,
    settings: model.Settings,
    deactivated: Collection[str],
    mailboxes: Mapping[str, tuple[model.EntraCalendar, ...] | None] | None,
) -> tuple[str, str] | None:
    """Why an event of `user` cannot be created in M365 (reason, words); None if it can."""
    return calendars.mailbox_refusal(user, settings, deactivated, mailboxes,
                                     unlinked=USER_NOT_LINKED, inactive=USER_DEACTIVATED)


def _change(event: model.OutboundEvent, entra_id: str | None, reason: str,
            after: Mapping[str, object], words: str) -> model.Change:
    return model.Change(
        model.EVENT_PUSH, "R15", reason, event.user_id, entra_id,
        {"id": event.id, "status": event.status, "graphId": event.graph_id},
        {"id": event.id, **after}, words)


def explain(user: model.EmplyUser, emply: model.EmplySnapshot, settings: model.Settings,
            mailboxes: Mapping[str, tuple[model.EntraCalendar, ...] | None] | None
            ) -> list[str]:
    """R18 for R15: why each of the user's outbound events is pending, created or failed."""
    words = []
    for event in sorted((o for o in emply.outbound if o.user_id == user.id),
                        key=lambda o: o.id):
        name = f"outbound event {event.subject or event.id!r} ({event.id})"
        if event.status == "created":
            words.append(f"{name}: created in the user's default M365 calendar "
                         f"(graphId {event.graph_id})")
        elif event.status == "failed":
            words.append(f"{name}: failed ({event.reason or 'no reason stored'}), not "
                         "retried; Emply can send it again as pending")
        elif not settings.enabled:
            words.append(f"{name}: pending; the integration is removed (settings enabled: "
                         "false), so no event is pushed")
        elif (failed := why_not(user, settings, (), mailboxes)) is not None:
            words.append(f"{name}: pending; the next run marks it failed ({failed[0]}): "
                         f"{failed[1]}")
        else:
            last = f" (last attempt: {event.reason})" if event.reason else ""
            words.append(f"{name}: pending{last}; the next run creates it in the user's "
                         "default M365 calendar")
    return words
