"""A shard's subscriptions (notifications on): each synced mailbox it read gets one,
made or renewed when due; each mailbox no longer synced loses its
(`shared.run.mailboxes.notified`)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from shared.graph import client as graph_client
from shared.graph import mailbox_subscriptions as graph_subs
from shared.run.mailboxes import notified
from shared.run.mailboxes.job import ShardJob
from shared.run.mailboxes.reads import Found

Subscribed = dict[str, tuple[str, str] | None]
"""User id -> its subscription now (id, expiry), None when it has none any more; a user
not in it keeps what its state says."""


async def keep(graph: graph_client.GraphClient, job: ShardJob, found: Found,
               listed: Mapping[str, Any], readable: Mapping[str, str],
               failed: Collection[str]) -> Subscribed:
    if job.notify is None:
        return {}
    out: Subscribed = {}
    gone = {u: s.subscription[0] for u, s in found.states.items()
            if u not in job.users and s.subscription is not None}
    if gone:
        await graph_subs.delete(graph, gone.values())
        out.update(dict.fromkeys(gone))
    wanted: dict[str, str | None] = {}
    users: dict[str, str] = {}
    for user_id, entra_id in readable.items():
        if user_id in failed or listed.get(entra_id) is None:
            continue  # not read, or no mailbox in the cloud (nothing to subscribe to)
        state = found.states.get(user_id)
        mark = job.dirty.get(entra_id.casefold())
        need = notified.wants_subscription(
            state, job.now, resubscribe=bool(mark and mark[0].get("resubscribe")))
        if need is not None:
            held = state.subscription if state is not None else None
            wanted[entra_id] = held[0] if need == "renew" and held else None
            users[entra_id] = user_id
    kept = await notified.keep_subscriptions(graph, job.notify, wanted, job.now)
    for entra_id, subscription in kept.items():
        out[users[entra_id]] = subscription
    return out
