"""Keeping Graph subscriptions on `/users` and `/groups` alive (issue 16).

`keep` runs after every timer tick when notifications are on: a missing subscription
(never made, or made for another URL or key) is created, one expiring within
`RENEW_WITHIN` is renewed (PATCH; recreated when Graph no longer knows it). Each gets
its own random `clientState` (a secret kept in Table Storage). Lifecycle events from
the notification route end up here too, through the notification queue:
`reauthorizationRequired` → `reauthorize`, `subscriptionRemoved` → `recreate`.

Failures never fail the sync: each is logged `emply_sync.subscription_failed` with the
action, the resource and a reason code (the renewal alert reads it), and the next
timer tick tries again; a subscription has days of margin (`RENEW_WITHIN`).
The clock is injected (`now`), so renewal is tested without waiting for days.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import secrets
from collections.abc import Mapping
from typing import Any

from shared import errors, telemetry
from shared.app import boundary
from shared.graph import errors as graph_errors
from shared.graph import subscriptions as graph_subs
from shared.notify import settings as notify_settings
from shared.run import report as run_report
from shared.store import subscription_table as table

RENEW_WITHIN = dt.timedelta(days=7)
"""Renew when fewer than this many days are left of Graph's 29: a failing renewal is
tried again every timer tick for a week before notifications stop."""
CREATED, RENEWED, RECREATED, REAUTHORIZED, UNCHANGED = (
    "created", "renewed", "recreated", "reauthorized", "unchanged")


async def keep(now: dt.datetime | None = None,
               environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Create missing and renew expiring subscriptions; resource -> what was done
    (`created`, `renewed`, `recreated`, `unchanged`, or `failed:<reason>`). Nothing when
    notifications are off."""
    settings = notify_settings.read(environ)
    if not settings.enabled:
        return {}
    outcome: dict[str, str] = {}
    async with boundary.open_deps(environ=environ) as deps:
        moment = now or deps.clock()
        stored = await table.subscriptions(table.table_of(deps.store))
        for resource in graph_subs.RESOURCES:
            try:
                outcome[resource] = await _keep_one(deps, settings, resource,
                                                    stored.get(resource), moment)
            except Exception as exc:
                outcome[resource] = "failed:" + _failed(exc, "keep", resource)
    return outcome


async def reauthorize(resource: str, environ: Mapping[str, str] | None = None) -> str:
    """After `reauthorizationRequired`: reauthorize, and recreate when Graph refuses."""
    settings = notify_settings.read(environ)
    async with boundary.open_deps(environ=environ) as deps:
        record = (await table.subscriptions(table.table_of(deps.store))).get(resource)
        if record is None:
            return await _create(deps, settings, resource, deps.clock(), RECREATED)
        try:
            await graph_subs.reauthorize(deps.graph, record.subscription_id)
        except graph_errors.GraphReadError:
            return await _create(deps, settings, resource, deps.clock(), RECREATED)
        _log(REAUTHORIZED, resource, record.subscription_id, record.expires_at)
        return REAUTHORIZED


async def recreate(resource: str, environ: Mapping[str, str] | None = None) -> str:
    """After `subscriptionRemoved`: a new subscription (new id, new clientState)."""
    settings = notify_settings.read(environ)
    async with boundary.open_deps(environ=environ) as deps:
        return await _create(deps, settings, resource, deps.clock(), RECREATED)


async def _keep_one(deps: boundary.Deps, settings: notify_settings.NotifySettings,
                    resource: str, record: table.SubscriptionRecord | None,
                    now: dt.datetime) -> str:
    if record is None:
        return await _create(deps, settings, resource, now, CREATED)
    if record.url_digest != settings.url_digest:
        # The app's URL or key changed (a redeployment rotates the key): Graph would
        # call a URL that no longer answers. Replace it, dropping the old one.
        await _delete_quietly(deps, record)
        return await _create(deps, settings, resource, now, RECREATED)
    expires = graph_subs.parse_time(record.expires_at)
    if expires - now > RENEW_WITHIN:
        return UNCHANGED
    new_expiry = graph_subs.expiry(now)
    try:
        await graph_subs.renew(deps.graph, record.subscription_id, new_expiry)
    except graph_errors.GraphReadError as exc:
        if exc.status != 404:
            raise
        return await _create(deps, settings, resource, now, RECREATED)
    renewed = table.SubscriptionRecord(
        resource=resource, subscription_id=record.subscription_id,
        client_state=record.client_state, expires_at=run_report.iso(new_expiry),
        url_digest=record.url_digest, created_at=record.created_at,
        renewed_at=run_report.iso(now))
    await table.put_subscription(table.table_of(deps.store), renewed)
    _log(RENEWED, resource, record.subscription_id, renewed.expires_at)
    return RENEWED


async def _create(deps: boundary.Deps, settings: notify_settings.NotifySettings,
                  resource: str, now: dt.datetime, action: str) -> str:
    if resource not in graph_subs.RESOURCES:
        raise ValueError(f"resource must be one of {graph_subs.RESOURCES}, got {resource!r}")
    client_state = secrets.token_urlsafe(32)
    expires = graph_subs.expiry(now)
    made = await graph_subs.create(deps.graph, resource=resource,
                                   notification_url=settings.notification_url,
                                   client_state=client_state, expires=expires)
    granted = graph_subs.expires_at(made) or expires
    record = table.SubscriptionRecord(
        resource=resource, subscription_id=str(made["id"]), client_state=client_state,
        expires_at=run_report.iso(granted), url_digest=settings.url_digest,
        created_at=run_report.iso(now))
    await table.put_subscription(table.table_of(deps.store), record)
    _log(action, resource, record.subscription_id, record.expires_at)
    return action


async def _delete_quietly(deps: boundary.Deps, record: table.SubscriptionRecord) -> None:
    with contextlib.suppress(graph_errors.GraphReadError):  # gone, or it expires anyway
        await graph_subs.delete(deps.graph, record.subscription_id)
    await table.delete_subscription(table.table_of(deps.store), record.resource)


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
