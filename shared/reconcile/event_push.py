"""R15: Emply's outbound events, kept in step with their copy in the user's default M365
calendar (pure, no I/O).

FAQ ("How do I synchronize the calendar with MS365?"): "When the synchronization is
activated the data can be used in Emply's calendar functionality. Additionally, Emply
can create events in the MS365 calendar."

Per outbound event at most one `event_push` change, from what Emply asks (the event's
content; `cancelled`; `deleteRequested`), what the sync stored (`graphId`, `status`,
`pushed`, `attemptedAt`) and, for the events looked up this run
(`EntraSnapshot.outbound`: a write whose answer was lost, an event R14 saw go), what M365
holds. `after.action` is what the event-push step does; `after.status` what M365 then
holds:

=================  ===============  ====================================  ===========
M365 holds         Emply asks for   reason → status                       action
=================  ===============  ====================================  ===========
nothing            the event        `outbound_event` → created            `create`
nothing, once had  the event        `deleted_in_m365` → deleted           none
nothing            cancelled        `event_cancelled` → cancelled         none
nothing            deleted          `event_deleted` → deleted             `forget`
a copy, unmarked   the event        `already_created` / `found_in_m365`   none
                                    → created
a copy             other content    `event_changed` → updated             `update`
a copy             cancelled        `event_cancelled` → cancelled         `cancel`
                                                                          (`delete`
                                                                          without
                                                                          attendees)
a copy             deleted          `event_deleted` → deleted             `delete`
=================  ===============  ====================================  ===========

`forget` and `delete` remove the outbound event from Emply once M365 holds nothing.
An action that writes to Graph needs the user in reach, else `failed` with the reason
(`user_not_linked`, `user_deactivated`, `calendar_sync_off`, `mailbox_not_in_cloud`):
final for that request (`failedFor`), so no retry loop, until Emply changes the event.
A user linked by this very run waits for the next run (its mailbox is read from then
on). `cancelled` and `deleted` are final: a cancelled event is not created again (a new
one is a new outbound event). An event whose write's answer was lost (`attemptedAt`)
and that could not be looked up this run is left for the next. With the integration
removed (R17) nothing is planned.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from shared.reconcile import calendars, model, outbound
from shared.reconcile.outbound import OutboundCopy, OutboundEvent

OUTBOUND_EVENT = "outbound_event"
ALREADY_CREATED = "already_created"
FOUND_IN_M365 = "found_in_m365"
EVENT_CHANGED = "event_changed"
EVENT_CANCELLED = "event_cancelled"
EVENT_DELETED = "event_deleted"
DELETED_IN_M365 = "deleted_in_m365"
USER_NOT_LINKED = "user_not_linked"
USER_DEACTIVATED = "user_deactivated"
FAILURE_REASONS = frozenset({USER_NOT_LINKED, USER_DEACTIVATED, model.CALENDAR_SYNC_OFF,
                             model.MAILBOX_NOT_IN_CLOUD})

CREATE, UPDATE, CANCEL, DELETE, FORGET, NONE = (
    "create", "update", "cancel", "delete", "forget", "none")
GRAPH_ACTIONS = frozenset({CREATE, UPDATE, CANCEL, DELETE})
"""Actions that write to Graph (and need the user in reach)."""
FINAL_STATUSES = frozenset({"cancelled", "deleted"})

_NO_ATTENDEES = outbound.digests(OutboundEvent("", "", start="2000-01-01T00:00:00Z",
                                               end="2000-01-01T00:00:00Z"))["attendees"]

Found = Mapping[str, OutboundCopy | None]
Mailboxes = Mapping[str, tuple[model.EntraCalendar, ...] | None]


def transaction_id(event_id: str) -> str:
    """Graph's `transactionId` for an outbound event (its mark's id): Graph documents it
    as avoiding redundant POSTs on client retries, nothing more, so it is sent but never
    relied on (`outbound.MARK_PROPERTY` is)."""
    return outbound.mark_id(event_id)


def push_changes(
    emply: model.EmplySnapshot,
    entra: model.EntraSnapshot,
    settings: model.Settings,
    deactivated: Collection[str],
    linked_now: Collection[str] = (),
) -> list[model.Change]:
    """The R15 changes, by event id. `deactivated`: users this run deactivates;
    `linked_now`: users this run links (left pending until the next run)."""
    if not settings.enabled:
        return []
    users = {u.id: u for u in emply.users}
    changes = []
    for event in sorted(emply.outbound, key=lambda o: o.id):
        user = users.get(event.user_id)
        planned = _planned(event, entra.outbound)
        if planned is None:
            continue
        reason, status, action, extra = planned
        entra_id = user.entra_id if user is not None else None
        if action in GRAPH_ACTIONS:
            if user is not None and user.id in linked_now and user.id not in deactivated:
                continue
            failed = why_not(user, settings, deactivated, entra.mailboxes)
            if failed is not None:
                changes.append(_failed(event, entra_id, *failed))
                continue
        changes.append(_change(event, entra_id, reason, status, action, extra))
    return changes


Planned = tuple[str, str, str, dict[str, object]]
"""(reason, status after, action, more of `after`)."""


def _planned(event: OutboundEvent, found: Found | None) -> Planned | None:
    """What to do with one event, before asking whether its user is in reach."""
    if event.status in FINAL_STATUSES:
        return (EVENT_DELETED, "deleted", FORGET, {}) if event.delete_requested else None
    looked = found is not None and event.id in found
    if event.status == "failed" and event.failed_for in (None,
                                                         outbound.intent_digest(event)):
        if event.delete_requested and not event.graph_id and not event.attempted_at:
            return EVENT_DELETED, "deleted", FORGET, {}
        return None  # final for this request, until Emply changes the event
    if event.attempted_at and not looked:
        return None  # a write's answer was lost and the event could not be looked up
    held = found.get(event.id) if found is not None and looked else (
        OutboundCopy(event.graph_id, None) if event.graph_id else None)
    if held is None:
        return _nothing_held(event, looked)
    if event.delete_requested:
        return EVENT_DELETED, "deleted", DELETE, {"graphId": held.graph_id}
    if event.cancelled:
        told = bool(event.attendees) or (event.pushed or {}).get("attendees") not in (
            None, _NO_ATTENDEES)
        return EVENT_CANCELLED, "cancelled", CANCEL if told else DELETE, {
            "graphId": held.graph_id, "attendeesTold": told}
    return _content(event, held, looked)


def _nothing_held(event: OutboundEvent, looked: bool) -> Planned:
    if event.delete_requested:
        return EVENT_DELETED, "deleted", FORGET, {}
    if event.cancelled:
        return EVENT_CANCELLED, "cancelled", NONE, {}
    if looked and event.graph_id:
        return DELETED_IN_M365, "deleted", NONE, {"reason": DELETED_IN_M365}
    return OUTBOUND_EVENT, "created", CREATE, {
        "subject": event.subject, "start": event.start, "end": event.end,
        "attendees": len(event.attendees), "transactionId": transaction_id(event.id)}


def _content(event: OutboundEvent, held: OutboundCopy, looked: bool) -> Planned | None:
    """An event M365 holds a copy of, and Emply wants to exist: PATCH what differs."""
    now = outbound.digests(event)
    same_copy = held.graph_id == event.graph_id
    if looked and held.digest == outbound.content_digest(event):
        patch: tuple[str, ...] = ()  # M365 holds this content already
    elif event.pushed is not None and same_copy:
        patch = outbound.changed_fields(event, event.pushed)
    else:
        # Adopted from a lost POST with other content since: everything; created before
        # the sync kept digests: assumed to hold what Emply holds.
        patch = outbound.FIELDS if looked else ()
    graph: dict[str, object] = {"graphId": held.graph_id}
    if patch:
        return EVENT_CHANGED, "updated", UPDATE, {
            **graph, "fields": list(patch), "subject": event.subject, "start": event.start,
            "end": event.end}
    if not same_copy:
        return FOUND_IN_M365, "created", NONE, graph
    if event.attempted_at and event.status != "pending":
        return EVENT_CHANGED, "updated", NONE, graph  # the lost PATCH did land
    if event.status == "pending" or event.pushed is None:
        return ALREADY_CREATED, "created", NONE, graph
    return None if event.pushed == now else (EVENT_CHANGED, event.status, NONE, graph)


def why_not(
    user: model.EmplyUser | None,
    settings: model.Settings,
    deactivated: Collection[str],
    mailboxes: Mailboxes | None,
) -> tuple[str, str] | None:
    """Why an event of `user` cannot be written in M365 (reason, words); None if it can."""
    return calendars.mailbox_refusal(user, settings, deactivated, mailboxes,
                                     unlinked=USER_NOT_LINKED, inactive=USER_DEACTIVATED)


_WORDS = {
    OUTBOUND_EVENT: "is created in the user's default M365 calendar, marked with its id "
                    "so a run that loses Graph's answer finds it instead of creating a "
                    "second one",
    ALREADY_CREATED: "is in M365 already (graphId {graphId}); it is not created again, "
                     "only marked created",
    FOUND_IN_M365: "was created in M365 by a run that lost Graph's answer: found by its "
                   "mark (graphId {graphId}), not created again",
    EVENT_CHANGED: "changed in Emply: its M365 event is updated ({fields})",
    EVENT_CANCELLED: "is cancelled in Emply: its M365 event is cancelled",
    EVENT_DELETED: "is deleted in Emply: deleted in M365 (if it is there), then in Emply",
    DELETED_IN_M365: "was deleted in M365 by its owner: reported, not created again",
}


def _change(event: OutboundEvent, entra_id: str | None, reason: str, status: str,
            action: str, extra: Mapping[str, object]) -> model.Change:
    fields = extra.get("fields")
    words = _WORDS[reason].format(graphId=extra.get("graphId"), fields=", ".join(
        map(str, fields)) if isinstance(fields, list) else "")
    if reason == EVENT_CHANGED and action == NONE:
        words = "changed in Emply: M365 holds the new content already (found by its mark)"
    if reason == EVENT_CANCELLED:
        words += (" (attendees told)" if extra.get("attendeesTold") else
                  " (deleted: no attendees to tell)" if action == DELETE else
                  " (nothing was in M365)")
    return model.Change(
        model.EVENT_PUSH, "R15", reason, event.user_id, entra_id,
        {"id": event.id, "status": event.status, "graphId": event.graph_id},
        {"id": event.id, "userId": event.user_id, "status": status, "action": action,
         **extra},
        f"outbound event {event.subject or event.id!r} {words}")


def _failed(event: OutboundEvent, entra_id: str | None, reason: str,
            words: str) -> model.Change:
    return model.Change(
        model.EVENT_PUSH, "R15", reason, event.user_id, entra_id,
        {"id": event.id, "status": event.status, "graphId": event.graph_id},
        {"id": event.id, "userId": event.user_id, "status": "failed", "reason": reason,
         "action": NONE, "failedFor": outbound.intent_digest(event),
         "graphId": event.graph_id},
        f"outbound event {event.subject or event.id!r} is not written to M365 ({reason}): "
        f"{words}; it is marked failed and not retried until Emply changes it")


_SETTLED = {
    "created": "created in the user's default M365 calendar (graphId {graphId})",
    "updated": "updated in the user's default M365 calendar (graphId {graphId})",
    "cancelled": "cancelled in M365 (attendees were told); it is not created again",
    "deleted": "deleted in M365{by}; it is not created again",
}


def explain(user: model.EmplyUser, emply: model.EmplySnapshot, settings: model.Settings,
            mailboxes: Mailboxes | None) -> list[str]:
    """R18 for R15: what M365 holds of each of the user's outbound events, and what the
    next run does with it."""
    words = []
    for event in sorted((o for o in emply.outbound if o.user_id == user.id),
                        key=lambda o: o.id):
        name = f"outbound event {event.subject or event.id!r} ({event.id})"
        planned = _planned(event, None)
        if event.status == "failed":
            text = (f"{name}: failed ({event.reason or 'no reason stored'}); not retried "
                    "until Emply changes it")
        elif event.status in _SETTLED:
            by = " by its owner" if event.reason == DELETED_IN_M365 else ""
            text = f"{name}: " + _SETTLED[event.status].format(graphId=event.graph_id, by=by)
        else:
            last = f" (last attempt: {event.reason})" if event.reason else ""
            text = f"{name}: pending{last}"
        if planned is not None and (event.status not in _SETTLED
                                    or planned[2] != NONE):
            text += "; " + _next(user, settings, mailboxes, planned)
        words.append(text)
    return words


def _next(user: model.EmplyUser, settings: model.Settings, mailboxes: Mailboxes | None,
          planned: Planned) -> str:
    reason, _status, action, _extra = planned
    if not settings.enabled:
        return "the integration is removed (settings enabled: false), so nothing is pushed"
    if action in GRAPH_ACTIONS and (failed := why_not(user, settings, (), mailboxes)):
        return f"the next run marks it failed ({failed[0]}): {failed[1]}"
    return {CREATE: "the next run creates it in the user's default M365 calendar",
            UPDATE: "the next run updates its M365 event",
            CANCEL: "the next run cancels its M365 event (attendees are told)",
            DELETE: "the next run deletes its M365 event, then removes it from Emply",
            FORGET: "the next run removes it from Emply (M365 holds nothing of it)",
            }.get(action, f"the next run settles it ({reason})")
