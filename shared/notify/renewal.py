"""Keeping Graph subscriptions on `/users` and `/groups` alive (issue 16).

`keep` runs after every timer tick when notifications are on: a missing subscription
(never made, or made for another URL or key) is created, one expiring within
`RENEW_WITHIN` is renewed (PATCH; recreated when Graph no longer knows it), and a
subscription Graph holds for this app's notification URL that the store does not know
(left by a crash between creating and storing it) is deleted at Graph. Each gets its
own random `clientState` (a secret kept in storage, `NotificationRecords`). Lifecycle
events from the notification route end up here too, through the notification queue:
`reauthorizationRequired` → `reauthorize`, `subscriptionRemoved` → `recreate`.

Acting once. Graph may deliver one lifecycle notification many times, and workers run
them at once. Each event of each subscription is claimed in storage before it is acted
on (`claim_lifecycle`: a conditional insert, so one of any number of deliveries acts);
`reauthorizationRequired`'s claim lapses after `REAUTHORIZE_AGAIN` (Graph asks again
later for good reasons). A subscription is stored only conditionally on the record it
replaces (`save_subscription(expected=...)`): a worker that loses that race deletes
the subscription it just made at Graph, so none is left behind.

Failures never fail the sync: each is logged `emply_sync.subscription_failed` with the
action, the resource and a reason code (the renewal alert reads it), and the next
timer tick tries again; a subscription has days of margin (`RENEW_WITHIN`).
The clock is injected (`now`), so renewal is tested without waiting for days.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import secrets
from collections.abc import AsyncIterator, Mapping
from typing import Any

from shared import errors, telemetry
from shared.app import boundary
from shared.graph import errors as graph_errors
from shared.graph import subscriptions as graph_subs
from shared.notify import settings as notify_settings
from shared.run import report as run_report
from shared.store.protocols import SubscriptionRecord

RENEW_WITHIN = dt.timedelta(days=7)
"""Renew when fewer than this many days are left of Graph's 29: a failing renewal is
tried again every timer tick for a week before notifications stop."""
REAUTHORIZE_AGAIN = 600
"""Seconds after which a `reauthorizationRequired` of the same subscription is acted on
again (Graph repeats it every 15 minutes at the most while it wants one)."""
CREATED, RENEWED, RECREATED, REAUTHORIZED, UNCHANGED, REPEAT, SUPERSEDED = (
    "created", "renewed", "recreated", "reauthorized", "unchanged", "repeat", "superseded")
ORPHAN_DELETED = "orphan_deleted"


async def keep(now: dt.datetime | None = None,
               environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Create missing and renew expiring subscriptions, delete orphans at Graph;
    resource -> what was done (`created`, `renewed`, `recreated`, `unchanged`,
    `superseded`, or `failed:<reason>`). Nothing when notifications are off."""
    settings = notify_settings.read(environ)
    if not settings.enabled:
        return {}
    outcome: dict[str, str] = {}
    async with boundary.open_deps(environ=environ) as deps:
        moment = now or deps.clock()
        stored = await deps.store.subscriptions()
        for resource in graph_subs.RESOURCES:
            try:
                outcome[resource] = await _keep_one(deps, settings, resource,
                                                    stored.get(resource), moment)
            except Exception as exc:
                outcome[resource] = "failed:" + _failed(exc, "keep", resource)
        if not any(o.startswith("failed:") for o in outcome.values()):  # else next tick
            try:
                await _delete_orphans(deps, settings)
            except Exception as exc:
                _failed(exc, "sweep", "*")
    return outcome


async def reauthorize(resource: str, environ: Mapping[str, str] | None = None, *,
                      subscription_id: str | None = None) -> str:
    """After `reauthorizationRequired` of `subscription_id`: reauthorize it, and replace
    it when Graph refuses. A repeat within `REAUTHORIZE_AGAIN` does nothing."""
    settings = notify_settings.read(environ)
    async with boundary.open_deps(environ=environ) as deps, _acting_once(
            deps, subscription_id, "reauthorizationRequired", REAUTHORIZE_AGAIN) as first:
        if not first:
            return REPEAT
        record, answer = await _current(deps, settings, resource, subscription_id)
        if record is None:
            return answer
        try:
            await graph_subs.reauthorize(deps.graph, record.subscription_id)
        except graph_errors.GraphReadError:
            return await _replace(deps, settings, record, deps.clock())
        _log(REAUTHORIZED, resource, record.subscription_id, record.expires_at)
        return REAUTHORIZED


async def recreate(resource: str, environ: Mapping[str, str] | None = None, *,
                   subscription_id: str | None = None) -> str:
    """After `subscriptionRemoved` of `subscription_id`: a new subscription (new id, new
    clientState), once however often the event is delivered."""
    settings = notify_settings.read(environ)
    async with boundary.open_deps(environ=environ) as deps, _acting_once(
            deps, subscription_id, "subscriptionRemoved", None) as first:
        if not first:
            return REPEAT
        record, answer = await _current(deps, settings, resource, subscription_id)
        if record is None:
            return answer
        return await _replace(deps, settings, record, deps.clock())


@contextlib.asynccontextmanager
async def _acting_once(deps: boundary.Deps, subscription_id: str | None, event: str,
                       ttl_seconds: int | None) -> AsyncIterator[bool]:
    """Claim `event` of `subscription_id` (True: this caller acts); a claim whose action
    fails is released, so the queue's retry of the notification may act."""
    if subscription_id is None:  # a message queued before claims existed
        yield True
        return
    first = await deps.store.claim_lifecycle(subscription_id, event,
                                             run_report.iso(deps.clock()),
                                             ttl_seconds=ttl_seconds)
    if not first:
        telemetry.log.info("emply_sync.lifecycle_repeat", extra={
            "event": event, "subscriptionId": subscription_id})
    try:
        yield first
    except BaseException:
        if first:
            with contextlib.suppress(Exception):
                await deps.store.release_lifecycle(subscription_id, event)
        raise


async def _current(deps: boundary.Deps, settings: notify_settings.NotifySettings,
                   resource: str, subscription_id: str | None
                   ) -> tuple[SubscriptionRecord | None, str]:
    """The stored subscription a lifecycle event of `subscription_id` concerns, or (None,
    the answer) when there is nothing to act on: none stored (one is made: `RECREATED`),
    or the event is about one replaced already (and deleted then: `SUPERSEDED`)."""
    record = (await deps.store.subscriptions()).get(resource)
    if record is None:
        return None, await _create(deps, settings, resource, deps.clock(), RECREATED, None)
    if subscription_id not in (None, record.subscription_id):
        return None, SUPERSEDED
    return record, ""


async def _keep_one(deps: boundary.Deps, settings: notify_settings.NotifySettings,
                    resource: str, record: SubscriptionRecord | None,
                    now: dt.datetime) -> str:
    if record is None:
        return await _create(deps, settings, resource, now, CREATED, None)
    if record.url_digest != settings.url_digest:
        # The app's URL or key changed (a redeployment rotates the key): Graph would
        # call a URL that no longer answers. Replace it, dropping the old one.
        return await _replace(deps, settings, record, now)
    expires = graph_subs.parse_time(record.expires_at)
    if expires - now > RENEW_WITHIN:
        return UNCHANGED
    new_expiry = graph_subs.expiry(now)
    try:
        await graph_subs.renew(deps.graph, record.subscription_id, new_expiry)
    except graph_errors.GraphReadError as exc:
        if exc.status != 404:
            raise
        return await _replace(deps, settings, record, now)
    renewed = dataclasses.replace(record, expires_at=run_report.iso(new_expiry),
                                  renewed_at=run_report.iso(now))
    if not await deps.store.save_subscription(renewed, expected=record):
        return SUPERSEDED  # replaced meanwhile by a lifecycle action: that one stands
    _log(RENEWED, resource, record.subscription_id, renewed.expires_at)
    return RENEWED


async def _replace(deps: boundary.Deps, settings: notify_settings.NotifySettings,
                   record: SubscriptionRecord, now: dt.datetime) -> str:
    """A new subscription in place of `record`'s; the old one deleted at Graph once the
    new one is stored (gone already after `subscriptionRemoved`: that is fine)."""
    action = await _create(deps, settings, record.resource, now, RECREATED, record)
    if action == RECREATED:
        await _delete_at_graph(deps, record.subscription_id)
    return action


async def _create(deps: boundary.Deps, settings: notify_settings.NotifySettings,
                  resource: str, now: dt.datetime, action: str,
                  expected: SubscriptionRecord | None) -> str:
    """A new subscription at Graph, stored only if the stored record is still
    `expected`; else deleted at Graph again (someone else stored theirs first)."""
    if resource not in graph_subs.RESOURCES:
        raise ValueError(f"resource must be one of {graph_subs.RESOURCES}, got {resource!r}")
    client_state = secrets.token_urlsafe(32)
    expires = graph_subs.expiry(now)
    made = await graph_subs.create(deps.graph, resource=resource,
                                   notification_url=settings.notification_url,
                                   client_state=client_state, expires=expires)
    granted = graph_subs.expires_at(made) or expires
    record = SubscriptionRecord(
        resource=resource, subscription_id=str(made["id"]), client_state=client_state,
        expires_at=run_report.iso(granted), url_digest=settings.url_digest,
        created_at=run_report.iso(now))
    try:
        stored = await deps.store.save_subscription(record, expected=expected)
    except BaseException:
        await _delete_at_graph(deps, record.subscription_id)
        raise
    if not stored:
        await _delete_at_graph(deps, record.subscription_id)
        _log(SUPERSEDED, resource, record.subscription_id, record.expires_at)
        return SUPERSEDED
    _log(action, resource, record.subscription_id, record.expires_at)
    return action


async def _delete_orphans(deps: boundary.Deps,
                          settings: notify_settings.NotifySettings) -> None:
    """Delete at Graph the subscriptions that call this app's notification route (under
    any key) and that the store does not know."""
    known = {r.subscription_id for r in (await deps.store.subscriptions()).values()}
    ours = settings.notification_url.split("?", 1)[0]
    for found in await graph_subs.list_all(deps.graph):
        url = str(found.get("notificationUrl") or "").split("?", 1)[0]
        subscription_id = str(found.get("id") or "")
        if url == ours and subscription_id and subscription_id not in known:
            await _delete_at_graph(deps, subscription_id)
            _log(ORPHAN_DELETED, str(found.get("resource")), subscription_id,
                 str(found.get("expirationDateTime")))


async def _delete_at_graph(deps: boundary.Deps, subscription_id: str) -> None:
    with contextlib.suppress(graph_errors.GraphReadError):  # gone, or it expires anyway
        await graph_subs.delete(deps.graph, subscription_id)


def _log(action: str, resource: str, subscription_id: str, expires_at: str) -> None:
    telemetry.log.info("emply_sync.subscription", extra={
        "action": action, "resource": resource, "subscriptionId": subscription_id,
        "expiresAt": expires_at})


def _failed(exc: BaseException, action: str, resource: str) -> str:
    classified = errors.classify(exc)
    reason = (classified.reason if classified is not None else
              # A setting (URL, key) missing or invalid: named in the message.
              "bad_configuration" if isinstance(exc, ValueError) else errors.BUG_REASON)
    extra: dict[str, Any] = {"action": action, "resource": resource, "reason": reason}
    if isinstance(exc, graph_errors.GraphReadError):
        extra["graphStatus"] = exc.status
        extra["graphCode"] = exc.code
    if isinstance(exc, ValueError):
        extra["detail"] = str(exc)[:200]  # names the setting; never a value of the key
    telemetry.log.error("emply_sync.subscription_failed", extra=extra,
                        exc_info=classified is None and not isinstance(exc, ValueError))
    return reason
