"""Graph subscriptions (change notifications): the `/subscriptions` routes, and delivery.

`POST /subscriptions` does what Graph does before it creates anything: it calls the
`notificationUrl` (and a different `lifecycleNotificationUrl`) with `?validationToken=`
and wants the token back as text/plain with 200 within 10 seconds, else 400. Checks
as Graph's for users and groups: `changeType` from `updated`, `deleted` (`created` is
not supported there), `expirationDateTime` in the future and at most 41,760 minutes
ahead, `clientState` at most 128 characters. Unlike Graph, notification URLs must be
loopback (the simulator never calls out of the machine); plain http is fine.

Delivery (`deliver_changes`, on `PUT /_sim/tenant`): every user or group that differs
between the old and the new version is one notification with Graph's body shape
(`value[]` of subscriptionId, subscriptionExpirationDateTime, changeType, resource,
resourceData, clientState, tenantId) to each live subscription on its resource:
`updated` for a change, a creation, a soft deletion and a membership change (Graph
sends group membership changes as the group's `updated`), as Graph does. Subscriptions
on a mailbox's events (`users/{id}/events`) are `graph_simulator.event_notifications`'.
Lifecycle events go out on demand (`POST /_sim/subscriptions/{id}/lifecycle`).
Deliveries are logged in `Simulator.deliveries` (status per POST; `GET /_sim/deliveries`).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from graph_simulator import event_notifications
from graph_simulator.protocol import GraphError, Req, Resp, bad_request, body_object, require
from graph_simulator.tenant import JSON, Snapshot

if TYPE_CHECKING:
    from graph_simulator.state import Simulator

MAX_MINUTES = 41_760
VALIDATION_TIMEOUT_SECONDS = 10
DELIVERY_TIMEOUT_SECONDS = 10
SUPPORTED = {"users": {"updated", "deleted"}, "groups": {"updated", "deleted"}}
LIFECYCLE_EVENTS = ("reauthorizationRequired", "subscriptionRemoved", "missed")
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_ODATA_TYPES = {"users": "#Microsoft.Graph.User", "groups": "#Microsoft.Graph.Group"}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f0Z")


def _parse_time(raw: Any, field: str) -> dt.datetime:
    if not isinstance(raw, str):
        raise bad_request(f"{field} is required.", "InvalidRequest")
    text = raw.strip().replace("Z", "+00:00")
    head, sep, rest = text.partition(".")
    if sep:
        digits = "".join(ch for ch in rest if ch.isdigit())
        text = f"{head}.{digits[:6].ljust(6, '0')}{rest[len(digits):]}"
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise bad_request(f"{field} is not a valid date and time.", "InvalidRequest") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _check_expiry(raw: Any, most: int = MAX_MINUTES) -> dt.datetime:
    expires = _parse_time(raw, "expirationDateTime")
    now = _now()
    if expires <= now:
        raise bad_request("Subscription expiration date must be in the future.",
                          "InvalidRequest")
    if expires > now + dt.timedelta(minutes=most):
        raise bad_request(f"Subscription expiration can only be {most} minutes in "
                          "the future.", "InvalidRequest")
    return expires


def _loopback(url: Any, field: str) -> str:
    if not isinstance(url, str):
        raise bad_request(f"{field} is required.", "InvalidRequest")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or parts.hostname not in _LOOPBACK:
        raise bad_request(f"{field} must be a loopback http(s) URL in the simulator.",
                          "InvalidRequest")
    return url


def _resource(raw: Any) -> str:
    name = raw.strip("/").lower() if isinstance(raw, str) else ""
    if name not in SUPPORTED:
        raise bad_request("Resource is not supported by the simulator (users, groups, "
                          "users/{id}/events).", "InvalidRequest")
    return name


def _mailbox(sim: Simulator, raw: Any) -> str | None:
    """The user id of a `users/{id}/events` resource (None for another resource); 404
    when the user does not exist or has no mailbox in the cloud."""
    named = event_notifications.mailbox_of(raw) if isinstance(raw, str) else None
    if named is None:
        return None
    uid = sim.current.find_user(named)
    if uid is None or uid not in sim.current.calendars:
        raise GraphError(404, "ResourceNotFound", f"Resource '{raw}' does not exist.")
    return uid


def public(subscription: JSON) -> JSON:
    """A subscription as Graph shows it (the simulator's own keys start with "_")."""
    return {k: v for k, v in subscription.items() if not k.startswith("_")}


def validate_url(url: str) -> None:
    """Graph's handshake: the token must come back, text/plain, 200, within 10 s."""
    token = f"Validation: {uuid.uuid4()}"
    try:
        # httpx merges the token into the URL's own query (the function key stays).
        answer = httpx.post(url, params={"validationToken": token},
                            timeout=VALIDATION_TIMEOUT_SECONDS)
    except httpx.HTTPError as err:
        raise bad_request(f"Subscription validation request failed: {type(err).__name__}.",
                          "ValidationError") from None
    content_type = answer.headers.get("content-type", "")
    if answer.status_code != 200 or answer.text != token \
            or not content_type.startswith("text/plain"):
        raise bad_request("Subscription validation request failed. Response must exactly "
                          "match validationToken query parameter.", "ValidationError")


def create_subscription(sim: Simulator, req: Req) -> Resp:
    body = body_object(req)
    mailbox = _mailbox(sim, body.get("resource"))
    resource = str(body["resource"]) if mailbox else _resource(body.get("resource"))
    change = body.get("changeType")
    kinds = set(change.split(",")) if isinstance(change, str) and change else set()
    allowed = event_notifications.CHANGE_TYPES if mailbox else SUPPORTED[resource]
    if not kinds or not kinds <= allowed:
        raise bad_request(f"changeType '{change}' is not supported for {resource}; "
                          f"use {', '.join(sorted(allowed))}.", "InvalidRequest")
    url = _loopback(body.get("notificationUrl"), "notificationUrl")
    lifecycle = body.get("lifecycleNotificationUrl")
    if lifecycle is not None:
        lifecycle = _loopback(lifecycle, "lifecycleNotificationUrl")
    state = body.get("clientState")
    if state is not None and (not isinstance(state, str) or len(state) > 128):
        raise bad_request("clientState must be a string of at most 128 characters.",
                          "InvalidRequest")
    most = event_notifications.MAX_MINUTES if mailbox else MAX_MINUTES
    expires = _check_expiry(body.get("expirationDateTime"), most)
    validate_url(url)
    if lifecycle is not None and lifecycle != url:
        validate_url(lifecycle)
    subscription: JSON = {
        "id": str(uuid.uuid4()), "resource": resource, "changeType": change,
        "clientState": state, "notificationUrl": url,
        "lifecycleNotificationUrl": lifecycle, "expirationDateTime": _iso(expires),
        "applicationId": "00000000-0000-0000-0000-00000000a11c",
        "creatorId": "00000000-0000-0000-0000-00000000c4ea",
        "latestSupportedTlsVersion": "v1_2", "notificationUrlAppId": None,
    }
    if mailbox:
        subscription["_mailbox"] = mailbox
    sim.subscriptions[subscription["id"]] = subscription
    return Resp(201, public(subscription))


def list_subscriptions(sim: Simulator, req: Req) -> Resp:
    return Resp(200, {"@odata.context": f"{req.base}/$metadata#subscriptions",
                      "value": [public(s) for s in sim.subscriptions.values()]})


def _found(sim: Simulator, req: Req) -> JSON:
    found: JSON = require(sim.subscriptions.get(req.params["id"]), req.params["id"])
    return found


def get_subscription(sim: Simulator, req: Req) -> Resp:
    return Resp(200, public(_found(sim, req)))


def patch_subscription(sim: Simulator, req: Req) -> Resp:
    subscription = _found(sim, req)
    body = body_object(req)
    unknown = set(body) - {"expirationDateTime", "notificationUrl"}
    if unknown:
        raise bad_request(f"Property '{sorted(unknown)[0]}' cannot be updated.",
                          "InvalidRequest")
    if "notificationUrl" in body:
        url = _loopback(body["notificationUrl"], "notificationUrl")
        validate_url(url)
        subscription["notificationUrl"] = url
    if "expirationDateTime" in body:
        most = event_notifications.MAX_MINUTES if subscription.get("_mailbox") \
            else MAX_MINUTES
        subscription["expirationDateTime"] = _iso(
            _check_expiry(body["expirationDateTime"], most))
    return Resp(200, public(subscription))


def delete_subscription(sim: Simulator, req: Req) -> Resp:
    _found(sim, req)
    del sim.subscriptions[req.params["id"]]
    return Resp(204)


def reauthorize_subscription(sim: Simulator, req: Req) -> Resp:
    subscription = _found(sim, req)
    subscription["reauthorizedAt"] = _iso(_now())
    return Resp(204)


def changed_ids(old: Snapshot, new: Snapshot) -> dict[str, list[tuple[str, str]]]:
    """resource -> [(changeType, id)] between two versions."""
    users = [("updated", uid) for uid in sorted(set(old.users) | set(new.users))
             if old.users.get(uid) != new.users.get(uid)]
    groups = [("updated", gid) for gid in sorted(set(old.groups) | set(new.groups))
              if old.groups.get(gid) != new.groups.get(gid)
              or old.members.get(gid) != new.members.get(gid)]
    return {"users": users, "groups": groups}


def _live(sim: Simulator) -> list[JSON]:
    now = _now()
    return [s for s in sim.subscriptions.values()
            if _parse_time(s["expirationDateTime"], "expirationDateTime") > now]


def _tenant_id(sim: Simulator) -> str:
    return str(sim.current.organization.get("id", ""))


async def deliver_changes(sim: Simulator, old: Snapshot, new: Snapshot) -> None:
    """The change notifications for `old` → `new`, one POST per subscription."""
    live = _live(sim)
    if not live:
        return  # nothing subscribed: no diff of (possibly 100,000) users
    await deliver_events(sim, event_notifications.changed(old.calendars, new.calendars))
    live = [s for s in live if not s.get("_mailbox")]
    if not live:
        return
    changes = changed_ids(old, new)
    tenant = _tenant_id(sim)
    posts: list[tuple[JSON, JSON]] = []
    for subscription in live:
        resource = subscription["resource"]
        wanted = set(str(subscription["changeType"]).split(","))
        items = [{
            "subscriptionId": subscription["id"],
            "subscriptionExpirationDateTime": subscription["expirationDateTime"],
            "changeType": change, "clientState": subscription["clientState"],
            "resource": f"{resource.capitalize()}/{object_id}",
            "resourceData": {"@odata.type": _ODATA_TYPES[resource],
                             "@odata.id": f"{resource.capitalize()}/{object_id}",
                             "id": object_id, "organizationId": tenant},
            "tenantId": tenant,
        } for change, object_id in changes[resource] if change in wanted]
        for start in range(0, len(items), 1000):
            posts.append((subscription, {"value": items[start:start + 1000]}))
    await _post_all(sim, [(str(s["notificationUrl"]), body) for s, body in posts])


async def deliver_events(sim: Simulator, changes: list[event_notifications.Change]) -> None:
    """Notifications of these event changes, one POST per subscription's batch of them."""
    if not changes:
        return
    found = event_notifications.items(sim, _live(sim), changes)
    grouped: dict[str, tuple[JSON, list[JSON]]] = {}
    for subscription, item in found:
        grouped.setdefault(subscription["id"], (subscription, []))[1].append(item)
    await _post_all(sim, [(str(s["notificationUrl"]), {"value": batch[i:i + 1000]})
                          for s, batch in grouped.values()
                          for i in range(0, len(batch), 1000)])


async def deliver_lifecycle(sim: Simulator, subscription_id: str, event: str) -> JSON:
    subscription = sim.subscriptions.get(subscription_id)
    if subscription is None:
        raise GraphError(404, "ResourceNotFound", f"no subscription {subscription_id}")
    body = {"value": [{
        "subscriptionId": subscription_id,
        "subscriptionExpirationDateTime": subscription["expirationDateTime"],
        "tenantId": _tenant_id(sim), "clientState": subscription["clientState"],
        "lifecycleEvent": event}]}
    if event == "subscriptionRemoved":
        del sim.subscriptions[subscription_id]
    url = subscription.get("lifecycleNotificationUrl") or subscription["notificationUrl"]
    statuses = await _post_all(sim, [(str(url), body)])
    return {"status": statuses[0]}


async def _post_all(sim: Simulator, posts: list[tuple[str, JSON]]) -> list[int | None]:
    statuses: list[int | None] = []
    if not posts:
        return statuses
    async with httpx.AsyncClient(timeout=DELIVERY_TIMEOUT_SECONDS) as client:
        for url, body in posts:
            try:
                status: int | None = (await client.post(url, json=body)).status_code
            except httpx.HTTPError:
                status = None
            statuses.append(status)
            sim.deliveries.append({"url": urlsplit(url).path, "items": len(body["value"]),
                                   "status": status, "at": _iso(_now())})
    return statuses
