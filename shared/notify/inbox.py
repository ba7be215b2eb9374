"""Graph change notifications in: check, debounce, enqueue; and the queue's work out.

The request (`receive`) does no Graph call and runs no sync: it answers within Graph's
3 seconds by checking the body and putting at most one message on the notification
queue (`config.NOTIFY_QUEUE_NAME`). Checks, item by item: the shape (else
`malformed_notification`), a subscription id we hold (else `unknown_subscription`), its
clientState compared in constant time (else `client_state_mismatch`). A dropped item is
counted and logged with its reason and never with its payload.

Replays. Graph's notifications for users and groups carry no id or time of their own:
the same group changed twice gives the same body twice, so a repeated body cannot be
told from a replayed one and is not dropped for being a repeat (that lost a leaver in
the latency bench). Instead: a repeat is absorbed by the debounce while a run is still
to come, and the worker asks Graph before it runs (`work`): when the delta rounds show
nothing new since the last run (`shared.run.unchanged.check`), no run is made or recorded
(`emply_sync.notification_run_skipped`, reason `nothing_changed`). A replayed
notification therefore starts no run and changes nothing. Since Graph's delta can lag
its notification, such work is looked at again a little later (`_look_again_later`,
bounded by `EMPLY_SYNC_NOTIFICATION_RECHECK_SECONDS` and `..._RECHECKS`) before it is
dropped.

Debounce (`schedule_run`): one entity holds when the last notification-triggered run
was scheduled for, moved only by a conditional write (ETag). A notification at `now`
with the last run scheduled at `last`:

- `last` unset or `now >= last + window`: a run now (leading edge);
- `last > now`: a run is still to come and will read this change: nothing;
- otherwise: one trailing run at `last + window` (the queue message's visibility delay).

So at most one targeted run per window, and every change is followed by a run that
starts after it. The run itself is a normal delta run (`trigger` `notification`): same
plan, guard (R7), report, lease (R1); busy lease → tried again a window later.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hmac
import json
from collections.abc import Mapping
from typing import Any

from shared import config, errors, telemetry
from shared.app import boundary, run_queue
from shared.emply import gate
from shared.graph import subscriptions as graph_subs
from shared.notify import mailbox_inbox, renewal
from shared.notify import settings as notify_settings
from shared.run import report as run_report
from shared.run import state as sync_state
from shared.run import unchanged
from shared.run.mailboxes import notified
from shared.store.protocols import SubscriptionRecord

TRIGGER = "notification"
MAX_BODY_BYTES = 1024 * 1024
MAX_ITEMS = 1000
MAX_BUSY_WAITS = 30
CHANGE_TYPES = frozenset({"created", "updated", "deleted"})
LIFECYCLE_EVENTS = frozenset({"reauthorizationRequired", "subscriptionRemoved", "missed"})
MALFORMED, UNKNOWN, MISMATCH = (
    "malformed_notification", "unknown_subscription", "client_state_mismatch")
NOTHING_CHANGED = "nothing_changed"
RUN, REAUTHORIZE, RECREATE = "run", "reauthorize", "recreate"


class BadNotification(ValueError):
    """The body as a whole is not a notification collection (names the field)."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(detail)
        self.field = field


@dataclasses.dataclass(frozen=True)
class Received:
    """What one notification request led to."""

    accepted: int
    dropped: dict[str, int]
    run_delay: int | None
    """Seconds until the scheduled run; None when no run was scheduled."""
    lifecycle: tuple[str, ...] = ()


def parse_body(raw: bytes) -> list[Any]:
    """The `value` array of a notification body; BadNotification naming what is wrong."""
    if len(raw) > MAX_BODY_BYTES:
        raise BadNotification("body", f"body is larger than {MAX_BODY_BYTES} bytes")
    try:
        body = gate.parse_json(raw, "body")
    except gate.GateError as exc:
        raise BadNotification(exc.field or "body", exc.detail) from None
    if not isinstance(body, dict) or not isinstance(body.get("value"), list):
        raise BadNotification("value", "body must be a JSON object with a value array")
    items: list[Any] = body["value"]
    if not 1 <= len(items) <= MAX_ITEMS:
        raise BadNotification("value", f"value must hold 1 to {MAX_ITEMS} notifications")
    return items


def _shape(item: Any) -> str | None:
    """None when the item has a notification's shape, else why not."""
    if not isinstance(item, dict):
        return "not an object"
    for name in ("subscriptionId", "clientState"):
        value = item.get(name)
        if not isinstance(value, str) or not value or len(value) > 256:
            return f"{name} missing"
    event = item.get("lifecycleEvent")
    if event is not None:
        return None if event in LIFECYCLE_EVENTS else "lifecycleEvent unknown"
    if item.get("changeType") not in CHANGE_TYPES:
        return "changeType unknown"
    if not isinstance(item.get("resource"), str):
        return "resource missing"
    return None


def check_items(items: list[Any], known: Mapping[str, SubscriptionRecord]
                ) -> tuple[list[tuple[str, dict[str, Any]]], dict[str, int]]:
    """(accepted (resource, item) pairs, dropped reason -> count). `known`: resource ->
    its stored subscription. Pure: no I/O, no payload logged."""
    by_id = {record.subscription_id: record for record in known.values()}
    accepted: list[tuple[str, dict[str, Any]]] = []
    dropped: dict[str, int] = {}
    for item in items:
        if _shape(item) is not None:
            reason = MALFORMED
        else:
            record = by_id.get(item["subscriptionId"])
            if record is None:
                reason = UNKNOWN
            elif not hmac.compare_digest(item["clientState"].encode(),
                                         record.client_state.encode()):
                reason = MISMATCH
            else:
                accepted.append((record.resource, item))
                continue
        dropped[reason] = dropped.get(reason, 0) + 1
    return accepted, dropped


def next_run(last: dt.datetime | None, now: dt.datetime,
             window: dt.timedelta) -> dt.datetime | None:
    """When to schedule a run for a change seen at `now` (see the module's docstring);
    None when the run scheduled for `last` is still to come."""
    if last is None or now >= last + window:
        return now
    if last > now:
        return None
    return last + window


async def receive(raw: bytes, *, now: dt.datetime | None = None,
                  environ: Mapping[str, str] | None = None) -> Received:
    """One notification request (change or lifecycle items). Raises BadNotification
    for a body that is not a notification collection (nothing happens then)."""
    items = parse_body(raw)
    settings = notify_settings.read(environ)
    async with boundary.open_deps(environ=environ) as deps:
        moment = now or deps.clock()
        # Mailboxes' events (`shared.notify.mailbox_inbox`): their mailbox marked dirty.
        mailbox_items, items = mailbox_inbox.split(items)
        in_mailboxes, dropped = await mailbox_inbox.accept(
            deps.store.mailbox_states(), mailbox_items, moment, enabled=settings.enabled)
        known = await deps.store.subscriptions() if settings.enabled else {}
        accepted, directory_dropped = check_items(items, known)
        for reason, count in directory_dropped.items():
            dropped[reason] = dropped.get(reason, 0) + count
        for reason, count in sorted(dropped.items()):
            telemetry.log.warning("emply_sync.notification_dropped",
                                  extra={"reason": reason, "count": count})
        messages: list[tuple[dict[str, Any], int]] = []
        lifecycle: list[str] = []
        wants_run = in_mailboxes > 0
        for resource, item in accepted:
            event = item.get("lifecycleEvent")
            # The subscription's id goes along: the worker acts once per event of it.
            if event == "reauthorizationRequired":
                messages.append(({"kind": REAUTHORIZE, "resource": resource,
                                  "subscriptionId": item["subscriptionId"]}, 0))
            elif event == "subscriptionRemoved":
                messages.append(({"kind": RECREATE, "resource": resource,
                                  "subscriptionId": item["subscriptionId"]}, 0))
                wants_run = True
            else:  # a change, or `missed`: run
                wants_run = True
            if event is not None:
                lifecycle.append(str(event))
        delay = await schedule_run(deps, moment, settings.debounce_seconds) \
            if wants_run else None
        if delay is not None:
            messages.append(({"kind": RUN, "busyWaits": 0}, delay))
        if messages:
            async with run_queue.open_run_queue(environ,
                                                queue_name=config.NOTIFY_QUEUE_NAME) as q:
                for message, wait in _unique(messages):
                    await q.send(message, delay_seconds=wait)
    telemetry.log.info("emply_sync.notifications", extra={
        "accepted": len(accepted) + in_mailboxes, "dropped": sum(dropped.values()),
        "mailboxes": in_mailboxes, "runDelaySeconds": delay,
        "lifecycle": ",".join(lifecycle) or None})
    return Received(len(accepted) + in_mailboxes, dropped, delay, tuple(lifecycle))


def _unique(messages: list[tuple[dict[str, Any], int]]) -> list[tuple[dict[str, Any], int]]:
    seen: set[str] = set()
    out = []
    for message, wait in messages:
        key = json.dumps(message, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append((message, wait))
    return out


async def schedule_run(deps: boundary.Deps, now: dt.datetime, window_seconds: int) -> int | None:
    """Seconds from now until the targeted run (debounced), or None when a run still to
    come covers this change. The decision is one conditional write."""
    window = dt.timedelta(seconds=window_seconds)
    for _attempt in range(8):
        seen = await deps.store.read_debounce()
        last = graph_subs.parse_time(seen.scheduled_at) if seen.scheduled_at else None
        at = next_run(last, now, window)
        if at is None:
            return None
        if await deps.store.write_debounce(seen, run_report.iso(at)):
            return max(0, int((at - now).total_seconds() + 0.999))
    raise errors.TemporaryFailure("storage_conflict",
                                  "could not settle when the next notification run is due")


def parse_message(raw: str | bytes) -> dict[str, Any]:
    try:
        message = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("the notification message is not JSON") from exc
    if not isinstance(message, dict) or message.get("kind") not in (RUN, REAUTHORIZE, RECREATE):
        raise ValueError("the notification message has no valid kind")
    if message["kind"] != RUN and message.get("resource") not in graph_subs.RESOURCES:
        raise ValueError("the notification message has no valid resource")
    for count in ("busyWaits", "rechecks"):
        value = message.get(count, 0)
        if type(value) is not int or value < 0:
            raise ValueError(f"the notification message's {count} is not a count")
    subscription_id = message.get("subscriptionId")
    if subscription_id is not None and not (isinstance(subscription_id, str)
                                            and 0 < len(subscription_id) <= 256):
        raise ValueError("the notification message's subscriptionId is not an id")
    return message


def poisoned(raw: str | bytes, dequeue_count: int) -> None:
    """The notification poison queue's trigger: work the Functions host gave up on is
    never dropped silently. Nothing is lost for good: the timer's run reads the same
    delta, and its tick creates, renews or recreates the subscriptions, so the record
    says which of the two takes over."""
    try:
        kind: str | None = str(parse_message(raw)["kind"])
    except ValueError:
        kind = None
    telemetry.log.error("emply_sync.error", extra={
        "reason": "notification_work_poisoned", "trigger": TRIGGER, "kind": kind,
        "attempts": dequeue_count,
        "takenOverBy": "the next timer run" if kind in (RUN, None)
        else "the next timer tick's subscription check"})


async def work(raw: str | bytes, environ: Mapping[str, str] | None = None
               ) -> dict[str, Any] | None:
    """The notification queue's trigger: a targeted run (its report), or a lifecycle
    action (None). A run that finds the lease taken is queued again a window later."""
    try:
        message = parse_message(raw)
    except ValueError as exc:
        telemetry.log.error("emply_sync.notification_message_invalid",
                            extra={"reason": str(exc)})
        return None
    if message["kind"] in (REAUTHORIZE, RECREATE):
        action = renewal.reauthorize if message["kind"] == REAUTHORIZE else renewal.recreate
        await _lifecycle(action, message["resource"], message.get("subscriptionId"), environ)
        return None
    try:
        if await _nothing_changed(environ):
            await _look_again_later(message, environ)
            return None
        return await boundary.sync(trigger=TRIGGER, environ=environ)
    except boundary.RunInProgress as exc:
        settings = notify_settings.read(environ)
        waits = int(message.get("busyWaits", 0)) + 1
        if waits > MAX_BUSY_WAITS:
            telemetry.log.warning("emply_sync.notification_run_given_up", extra={
                "trigger": TRIGGER, "runningRunId": exc.running_run_id})
            return None
        async with run_queue.open_run_queue(environ, queue_name=config.NOTIFY_QUEUE_NAME) as q:
            await q.send({"kind": RUN, "busyWaits": waits},
                         delay_seconds=max(1, settings.debounce_seconds))
        telemetry.log.info("emply_sync.notification_run_waiting", extra={
            "trigger": TRIGGER, "runningRunId": exc.running_run_id, "busyWaits": waits})
        return None


async def _look_again_later(message: Mapping[str, Any],
                            environ: Mapping[str, str] | None) -> None:
    """A notification whose delta round showed nothing: Graph's delta can lag its
    notification (concepts/delta-query-overview.md, "processing delays"), so the same
    work is queued again after the recheck delay (doubled each time), at most
    `rechecks` times, before it is dropped."""
    done = int(message.get("rechecks", 0))
    wait = notify_settings.read(environ).recheck_delay(done)
    telemetry.log.info("emply_sync.notification_run_skipped", extra={
        "trigger": TRIGGER, "reason": NOTHING_CHANGED, "rechecks": done,
        "lookAgainSeconds": wait})
    if wait is not None:
        async with run_queue.open_run_queue(environ, queue_name=config.NOTIFY_QUEUE_NAME) as q:
            await q.send({"kind": RUN, "busyWaits": 0, "rechecks": done + 1},
                         delay_seconds=wait)


async def _nothing_changed(environ: Mapping[str, str] | None) -> bool:
    """Whether Graph reports nothing new since the last run and its outcome stands (the
    run's own first step, `shared.run.unchanged`, asked before a run is made): then a
    notification (a replay, a change the last run already read) needs no run. A lease
    held by a run now is `RunInProgress`, as for the run itself."""
    async with boundary.open_deps(environ=environ) as deps:
        await _refuse_if_leased(deps)
        if await notified.dirty(deps.store.mailbox_states()):
            return False  # mailboxes Graph said changed: the run reads them
        state, _warnings = await sync_state.load_state(deps.store)
        check = await unchanged.check(deps.store, deps.graph, state, started=deps.clock(),
                                      approve=None)
        return check.residual is not None


async def _refuse_if_leased(deps: boundary.Deps) -> None:
    lease = await deps.store.current_lease()
    expires = lease.get("expiresAt") if lease else None
    if lease is not None and isinstance(expires, str) and \
            graph_subs.parse_time(expires) > deps.clock():
        raise boundary.RunInProgress(str(lease.get("runId")), str(lease.get("trigger")),
                                    str(lease.get("startedAt")))


async def _lifecycle(action: Any, resource: str, subscription_id: str | None,
                     environ: Mapping[str, str] | None) -> None:
    try:
        await action(resource, environ, subscription_id=subscription_id)
    except Exception as exc:
        # The timer's `keep` repairs it at its next tick; logged for the renewal alert.
        classified = errors.classify(exc)
        telemetry.log.error("emply_sync.subscription_failed", extra={
            "action": action.__name__, "resource": resource,
            "reason": classified.reason if classified else errors.BUG_REASON},
            exc_info=classified is None)
