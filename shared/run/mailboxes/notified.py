"""The mailbox pass with Graph change notifications on: what changed, and subscriptions.

The notification route marks a mailbox *dirty* when Graph notifies a change of its
events (or a lifecycle event of its subscription; the pass's records, partition
`dirty`, keyed by the Entra id); a user's own calendar choice in Emply marks it too.
A run then reads the dirty mailboxes, the ones whose Emply side or directory changed,
and its sweep (`shared.reconcile.mailbox_sweep`), and clears the marks it acted on
(each conditional on its ETag: a mark renewed meanwhile stays for the next run).

Subscriptions: a mailbox read by a sweep (or whose subscription Graph removed) gets one,
created or renewed (`shared.graph.mailbox_subscriptions`); one no longer synced has its
deleted. Their `clientState` is made with the pass's secret (partition `secret`),
created once.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import secrets
from collections.abc import Collection, Mapping
from typing import Any

from shared.graph import client as graph_client
from shared.graph import mailbox_subscriptions as graph_subs
from shared.run.mailboxes.state import MailboxState
from shared.store import protocols

DIRTY = "dirty"
SECRET, SECRET_KEY = "secret", "clientState"

Dirty = dict[str, tuple[dict[str, Any], str]]
"""Entra id (case-folded) -> (the mark, its ETag)."""


@dataclasses.dataclass(frozen=True)
class Notify:
    """What a shard needs to keep subscriptions."""

    url: str
    secret: bytes


def decode_secret(record: Mapping[str, Any]) -> bytes | None:
    value = record.get("value")
    return base64.b64decode(value) if isinstance(value, str) else None


async def secret(states: protocols.MailboxStates) -> bytes:
    """The pass's secret for `clientState`s, made on first use."""
    for _attempt in range(3):
        found = (await states.read_records(SECRET)).get(SECRET_KEY)
        made = decode_secret(found[0]) if found is not None else None
        if made is not None:
            return made
        value = base64.b64encode(secrets.token_bytes(32)).decode()
        await states.put_record(SECRET, SECRET_KEY, {"value": value}, create=True)
    raise RuntimeError("the mailbox pass's secret could not be made")


async def mark_dirty(states: protocols.MailboxStates, entra_id: str, why: str,
                     now: dt.datetime, *, resubscribe: bool = False) -> None:
    """A mailbox to read at the next run (`resubscribe`: its subscription is gone)."""
    current = (await states.read_records(DIRTY)).get(entra_id.casefold()) \
        if resubscribe else None
    await states.put_record(DIRTY, entra_id.casefold(), {
        "at": now.astimezone(dt.UTC).isoformat(timespec="seconds"), "why": why,
        "resubscribe": resubscribe or bool(current and current[0].get("resubscribe"))})


async def dirty(states: protocols.MailboxStates) -> Dirty:
    return await states.read_records(DIRTY)


async def clear(states: protocols.MailboxStates, marks: Dirty, read: Collection[str]
                ) -> None:
    """Drop the marks of the mailboxes (Entra ids) a shard read, each only if unchanged
    since it was read."""
    for entra_id in read:
        found = marks.get(entra_id.casefold())
        if found is not None:
            await states.delete_record(DIRTY, entra_id.casefold(), etag=found[1])


def wants_subscription(state: MailboxState | None, now: dt.datetime, *,
                       resubscribe: bool) -> str | None:
    """"create", "renew", or None: what a mailbox read now needs of its subscription."""
    held = state.subscription if state is not None else None
    if held is None or resubscribe:
        return "create"
    expires = dt.datetime.fromisoformat(held[1].replace("Z", "+00:00"))
    return "renew" if expires - now < graph_subs.RENEW_WITHIN else None


async def keep_subscriptions(graph: graph_client.GraphClient, notify: Notify,
                             wanted: Mapping[str, str | None], now: dt.datetime
                             ) -> dict[str, tuple[str, str] | None]:
    """Entra id -> its subscription (id, expiry) once made or renewed, None when Graph
    would not make it (the sweep still reads that mailbox)."""
    if not wanted:
        return {}
    kept = await graph_subs.keep(
        graph, [graph_subs.Wanted(e, s) for e, s in sorted(wanted.items())],
        notification_url=notify.url, secret=notify.secret, now=now)
    return {e: (k.subscription_id, k.expires_at) if isinstance(k, graph_subs.Kept) else None
            for e, k in kept.items()}
