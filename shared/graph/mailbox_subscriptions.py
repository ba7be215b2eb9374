"""Graph subscriptions on each synced mailbox's events (`users/{id}/events`).

With change notifications on, the mailbox pass keeps one subscription per synced
mailbox (change types `created,updated,deleted`; Outlook resources live at most 4,230
minutes, `ASK_MINUTES` stays an hour under Graph's clock) and renews it when less than
`RENEW_WITHIN` is left, whenever it reads the mailbox in its daily sweep. Graph offers
no subscription on a user's calendars themselves: a calendar created, shared or removed
without an event change is seen at the sweep. Each subscription's `clientState` names
its mailbox and proves it ours (`client_state`), so a notification, and a lifecycle
event, which names no resource, can be taken to its mailbox without a lookup.

Creations and renewals go as `$batch` items (20 a request); Graph validates the
notification URL for every creation (the route answers the handshake). A mailbox whose
subscription cannot be made is only not notified: its sweep still reads it.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime as dt
import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from shared.graph import batch_get, errors
from shared.graph import client as graph_client
from shared.graph.mailbox_gate import Failure
from shared.graph.subscriptions import expires_at, iso

CHANGE_TYPE = "created,updated,deleted"
GRAPH_MAX_MINUTES = 4_230
ASK_MINUTES = GRAPH_MAX_MINUTES - 60
RENEW_WITHIN = dt.timedelta(hours=36)
"""Renew when less than this is left: a bucket is swept twice a day (once when half the
timer runs fail), so a subscription is renewed about a day before it would lapse."""
CONCURRENT_BATCHES = 4
PREFIX = "m1."


def resource(entra_id: str) -> str:
    return f"users/{entra_id}/events"


def client_state(secret: bytes, entra_id: str) -> str:
    """`m1.<entra id>.<HMAC>`: the mailbox, and that we made it (at most 128 characters:
    an Entra id is a GUID)."""
    mac = hmac.new(secret, entra_id.casefold().encode(), hashlib.sha256).digest()
    return f"{PREFIX}{entra_id}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"


def mailbox_of(secret: bytes, state: str) -> str | None:
    """The Entra id a `clientState` names when it is ours (constant-time), else None."""
    if not state.startswith(PREFIX) or len(state) > 128:
        return None
    entra_id, _, _mac = state[len(PREFIX):].rpartition(".")
    if not entra_id:
        return None
    return entra_id if hmac.compare_digest(client_state(secret, entra_id), state) else None


@dataclasses.dataclass(frozen=True)
class Kept:
    subscription_id: str
    expires_at: str


@dataclasses.dataclass(frozen=True, slots=True)
class Wanted:
    """A mailbox whose subscription to create (`subscription_id` None) or renew."""

    entra_id: str
    subscription_id: str | None = None


async def keep(client: graph_client.GraphClient, wanted: Iterable[Wanted], *,
               notification_url: str, secret: bytes, now: dt.datetime
               ) -> dict[str, Kept | Failure]:
    """Create or renew these mailboxes' subscriptions; per Entra id what became of it. A
    renewal Graph no longer knows (404) is made anew."""
    expires = now + dt.timedelta(minutes=ASK_MINUTES)
    out: dict[str, Kept | Failure] = {}
    gate = asyncio.Semaphore(CONCURRENT_BATCHES)

    async def one(chunk: Sequence[Wanted]) -> list[Wanted]:
        async with gate:
            return await _batch(client, chunk, out, notification_url, secret, expires)

    todo = list(wanted)
    for _round in range(2):  # renewals of gone subscriptions: created in a second round
        found = await asyncio.gather(*(one(todo[i:i + batch_get.BATCH_SIZE])
                                       for i in range(0, len(todo), batch_get.BATCH_SIZE)))
        todo = [w for again in found for w in again]
    return out


async def _batch(client: graph_client.GraphClient, chunk: Sequence[Wanted],
                 out: dict[str, Kept | Failure], url: str, secret: bytes,
                 expires: dt.datetime) -> list[Wanted]:
    requests = [_request(str(n), w, url, secret, expires) for n, w in enumerate(chunk)]
    try:
        answer = await client.post_json("/$batch", {"requests": requests})
    except errors.GraphReadError as exc:
        for w in chunk:
            out[w.entra_id] = Failure(exc.status, exc.code, exc.message)
        return []
    responses = {r.get("id"): r for r in answer.get("responses") or () if isinstance(r, dict)}
    again = []
    for n, w in enumerate(chunk):
        response = responses.get(str(n)) or {}
        status, body = response.get("status"), response.get("body")
        made = expires_at(body) if isinstance(body, Mapping) else None
        if status in (200, 201) and isinstance(body, Mapping) and (
                isinstance(body.get("id"), str) or w.subscription_id):
            out[w.entra_id] = Kept(str(body.get("id") or w.subscription_id),
                                   iso(made or expires))
        elif status == 404 and w.subscription_id is not None:
            again.append(Wanted(w.entra_id))
        else:
            code, message = batch_get.error_of(body)
            out[w.entra_id] = Failure(status if isinstance(status, int) else None, code,
                                      message or "the subscription was not made")
    return again


def _request(item_id: str, wanted: Wanted, url: str, secret: bytes, expires: dt.datetime
             ) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"}
    if wanted.subscription_id is not None:
        return {"id": item_id, "method": "PATCH", "headers": headers,
                "url": f"/subscriptions/{quote(wanted.subscription_id, safe='')}",
                "body": {"expirationDateTime": iso(expires)}}
    return {"id": item_id, "method": "POST", "url": "/subscriptions", "headers": headers,
            "body": {"changeType": CHANGE_TYPE, "resource": resource(wanted.entra_id),
                     "notificationUrl": url, "lifecycleNotificationUrl": url,
                     "clientState": client_state(secret, wanted.entra_id),
                     "expirationDateTime": iso(expires)}}


async def delete(client: graph_client.GraphClient, subscription_ids: Iterable[str]) -> None:
    """Delete these subscriptions (one whose mailbox is no longer synced); a failure is
    harmless: a subscription lapses within three days, and its notifications are
    dropped (the mailbox is not synced)."""
    ids = list(subscription_ids)
    for start in range(0, len(ids), batch_get.BATCH_SIZE):
        chunk = ids[start:start + batch_get.BATCH_SIZE]
        try:
            await client.post_json("/$batch", {"requests": [
                {"id": str(n), "method": "DELETE",
                 "url": f"/subscriptions/{quote(s, safe='')}"} for n, s in enumerate(chunk)]})
        except errors.GraphReadError:
            continue
