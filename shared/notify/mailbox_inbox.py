"""Graph change notifications on mailboxes' events, in: check, mark, and ask for a run.

The notification route receives them with the users/groups ones (`shared.notify.inbox`);
a mailbox subscription's `clientState` names its mailbox and is made with the pass's
secret (`shared.graph.mailbox_subscriptions.client_state`), so an item is checked in
constant time with no lookup, and a lifecycle event (which names no resource) still
reaches its mailbox. Each accepted item marks its mailbox dirty
(`shared.run.mailboxes.notified`): the next run reads it. `subscriptionRemoved` and
`reauthorizationRequired` also ask for its subscription anew (a renewal reauthorizes),
`missed` only reads it. The route then schedules a run as for any change (debounced).
A dropped item is counted by reason and never logged with its payload.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from typing import Any

from shared.graph import mailbox_subscriptions as graph_subs
from shared.run.mailboxes import notified
from shared.store import protocols

CHANGE_TYPES = frozenset({"created", "updated", "deleted"})
LIFECYCLE_EVENTS = frozenset({"reauthorizationRequired", "subscriptionRemoved", "missed"})
RESUBSCRIBE = frozenset({"reauthorizationRequired", "subscriptionRemoved"})
MALFORMED, UNKNOWN, MISMATCH = (
    "malformed_notification", "unknown_subscription", "client_state_mismatch")


def split(items: Sequence[Any]) -> tuple[list[dict[str, Any]], list[Any]]:
    """(the items of mailbox subscriptions, the others)."""
    mine, rest = [], []
    for item in items:
        state = item.get("clientState") if isinstance(item, dict) else None
        if isinstance(state, str) and state.startswith(graph_subs.PREFIX):
            mine.append(item)
        else:
            rest.append(item)
    return mine, rest


async def accept(states: protocols.MailboxStates, items: list[dict[str, Any]],
                 now: dt.datetime, *, enabled: bool) -> tuple[int, dict[str, int]]:
    """Mark the mailboxes the valid items name; (accepted, dropped reason -> count)."""
    dropped: dict[str, int] = {}
    if not items:
        return 0, dropped
    found = (await states.read_records(notified.SECRET)).get(notified.SECRET_KEY) \
        if enabled else None
    secret = notified.decode_secret(found[0]) if found else None
    marks: dict[str, tuple[str, bool]] = {}
    for item in items:
        reason, entra_id = _check(item, secret)
        if entra_id is None:
            dropped[reason] = dropped.get(reason, 0) + 1
            continue
        event = item.get("lifecycleEvent")
        _why, again = marks.get(entra_id, ("", False))
        marks[entra_id] = (str(event or item.get("changeType")),
                           again or event in RESUBSCRIBE)
    await asyncio.gather(*(notified.mark_dirty(states, e, why, now, resubscribe=again)
                           for e, (why, again) in marks.items()))
    return len(items) - sum(dropped.values()), dropped


def _check(item: dict[str, Any], secret: bytes | None) -> tuple[str, str | None]:
    """(why it is dropped, or the Entra id of the mailbox it names)."""
    event = item.get("lifecycleEvent")
    shaped = (event in LIFECYCLE_EVENTS if event is not None else
              item.get("changeType") in CHANGE_TYPES and isinstance(item.get("resource"), str))
    state = item.get("clientState")
    if not shaped or not isinstance(item.get("subscriptionId"), str) \
            or not isinstance(state, str):
        return MALFORMED, None
    if secret is None:
        return UNKNOWN, None
    entra_id = graph_subs.mailbox_of(secret, state)
    return (MISMATCH, None) if entra_id is None else ("", entra_id)
