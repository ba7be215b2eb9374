"""Graph subscriptions (change notifications) on `/users` and `/groups`: create, renew,
reauthorize, delete, through the same SDK pipeline as every other Graph call.

Change types: users and groups do not support `created`; `updated` covers creation,
changes, soft deletion and (for groups) membership changes, `deleted` the permanent
deletion (Graph's change-notification docs). Graph caps the expiry of users and groups
subscriptions at 41,760 minutes (29 days); `MAX_MINUTES` stays an hour under it, as
Graph measures from its own clock. A subscription needs a read permission on its
resource: User.Read.All (the sync's own) for `/users`, Group.Read.All for `/groups`
(api/subscription-post-subscriptions.md; GroupMember.Read.All is not among those Graph
accepts), which infra grants with `enableNotifications`.

Creating a subscription makes Graph call the notification URL with a `validationToken`
first; the route must echo it (webhook_http/notifications.py) or the create fails.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from shared.graph import client as graph_client

RESOURCES: tuple[str, ...] = ("users", "groups")
CHANGE_TYPE = "updated,deleted"
GRAPH_MAX_MINUTES = 41_760
MAX_MINUTES = GRAPH_MAX_MINUTES - 60


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")


def expiry(now: dt.datetime, minutes: int = MAX_MINUTES) -> dt.datetime:
    """The expiry to ask for: `minutes` from now, never beyond the cap."""
    return now + dt.timedelta(minutes=min(minutes, MAX_MINUTES))


async def create(graph: graph_client.GraphClient, *, resource: str, notification_url: str,
                 client_state: str, expires: dt.datetime) -> dict[str, Any]:
    """POST /subscriptions; Graph's subscription (with its `id`)."""
    body = {"changeType": CHANGE_TYPE, "resource": resource,
            "notificationUrl": notification_url,
            "lifecycleNotificationUrl": notification_url,
            "clientState": client_state, "expirationDateTime": iso(expires)}
    answer = await graph.send_json("POST", "/subscriptions", body)
    if answer is None or not isinstance(answer.get("id"), str):
        raise ValueError("Graph created a subscription but answered no id")
    return answer


async def renew(graph: graph_client.GraphClient, subscription_id: str,
                expires: dt.datetime) -> dict[str, Any] | None:
    """PATCH /subscriptions/{id} with the new expiry."""
    return await graph.send_json("PATCH", f"/subscriptions/{_segment(subscription_id)}",
                                 {"expirationDateTime": iso(expires)})


async def reauthorize(graph: graph_client.GraphClient, subscription_id: str) -> None:
    """POST /subscriptions/{id}/reauthorize (after a reauthorizationRequired event)."""
    await graph.send_json("POST", f"/subscriptions/{_segment(subscription_id)}/reauthorize")


MAX_LIST_PAGES = 100


async def list_all(graph: graph_client.GraphClient) -> list[dict[str, Any]]:
    """GET /subscriptions: every subscription the app made in the tenant (app-only
    tokens list them all), following `@odata.nextLink`."""
    found: list[dict[str, Any]] = []
    url: str | None = "/subscriptions"
    for _page in range(MAX_LIST_PAGES):
        if url is None:
            break
        body = await graph.get_json(url)
        found += [s for s in body.get("value") or () if isinstance(s, dict)]
        link = body.get("@odata.nextLink")
        url = link if isinstance(link, str) else None
    return found


async def delete(graph: graph_client.GraphClient, subscription_id: str) -> None:
    await graph.send_json("DELETE", f"/subscriptions/{_segment(subscription_id)}")


def expires_at(subscription: Mapping[str, Any]) -> dt.datetime | None:
    raw = subscription.get("expirationDateTime")
    if not isinstance(raw, str):
        return None
    try:
        return parse_time(raw)
    except ValueError:
        return None


def parse_time(raw: str) -> dt.datetime:
    """Graph's timestamps (7 fractional digits, `Z`) as an aware datetime."""
    text = raw.strip().replace("Z", "+00:00")
    head, sep, rest = text.partition(".")
    if sep:  # Python takes at most 6 fractional digits
        digits = "".join(ch for ch in rest if ch.isdigit())
        text = f"{head}.{digits[:6].ljust(6, '0')}{rest[len(digits):]}"
    moment = dt.datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _segment(subscription_id: str) -> str:
    if not subscription_id or not all(c.isalnum() or c == "-" for c in subscription_id):
        raise ValueError(f"subscription id {subscription_id!r} is not a Graph id")
    return subscription_id
