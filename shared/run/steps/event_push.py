"""The event-push step (R15): the plan's `event_push` changes, Graph first, then the
Emply side. It comes after the Emply writes.

Exactly once across retries and crashes:

1. the outbound events are read again from the store just before: one that has a
   `graphId` stored is never POSTed again (only marked `created`), one whose status
   became final meanwhile is left alone;
2. the others are POSTed with Graph's `transactionId` derived from their id
   (`shared.reconcile.event_push.transaction_id`), so a run killed after the POST and
   before step 3 sends the same transactionId at the next run and Graph answers with
   the event it made the first time, not a second one;
3. then each event's `graphId` and `status` are stored (`created`; `failed` with its
   `reason`; a temporary error keeps it `pending` with `lastError`, for the next run).

The planned failures (`user_not_linked`, `user_deactivated`, `calendar_sync_off`,
`mailbox_not_in_cloud`) are stored in the same write. What did not happen as planned
is dropped from the report's changes and counts and reported as an error, as
write-back does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared import telemetry
from shared.graph import client as graph_client
from shared.graph import event_writer
from shared.reconcile import event_push, model
from shared.run.context import Run
from shared.run.steps import base
from shared.store import protocols

EVENT_PUSH_FAILED = "event_push_failed"
"""Report error: an outbound event could not be created this run (kept pending)."""


class EventPushStep(base.Step):
    name = "event_push"

    async def apply(self, run: Run, applied: base.Applied) -> base.StepOutcome:
        planned = applied.pending({model.EVENT_PUSH})
        if not planned:
            return base.StepOutcome(self.name)
        return await push(run.deps.store, run.deps.graph, planned, run, run.loaded)


async def push(store: protocols.EmplyTables, graph: graph_client.GraphClient,
               planned: list[model.Change], run: Run,
               loaded: protocols.LoadedEmply | None = None) -> base.StepOutcome:
    """Carry out `event_push` changes; see the module's docstring. `loaded`: the run's
    load of the Emply side, which the reads and writes are guarded by (an outbound event
    Emply changed since is a `ConcurrentChangeError`)."""
    stored = await store.read_entities("outboundEvents", (str(c.after["id"]) for c in planned),
                                       loaded=loaded)
    updates: dict[str, dict[str, Any]] = {}
    pushes: dict[str, tuple[model.Change, event_writer.Push]] = {}
    skipped: list[model.Change] = []
    for change in planned:
        event = stored.get(str(change.after["id"]))
        if event is None or event.get("status") in event_push.FINAL_STATUSES:
            skipped.append(change)  # deleted or settled since the plan was made
        elif event.get("graphId"):
            updates[event["id"]] = _settled(event, status="created")
            if change.reason != event_push.ALREADY_CREATED:
                skipped.append(change)
        elif change.reason in event_push.FAILURE_REASONS:
            updates[event["id"]] = _settled(event, status="failed", reason=change.reason)
        elif change.reason == event_push.OUTBOUND_EVENT and change.entra_id:
            pushes[event["id"]] = (change, event_writer.Push(
                event["id"], change.entra_id, event_writer.event_body(
                    event.get("subject"), event["start"], event["end"],
                    event_push.transaction_id(event["id"]))))
    result = await event_writer.push_events(graph, [p for _, p in pushes.values()])
    problems: list[dict[str, Any]] = []
    for event_id, (change, _push) in pushes.items():
        event = stored[event_id]
        outcome = result.outcomes.get(event_id, event_writer.Outcome(error="no answer"))
        if outcome.graph_id is not None:
            updates[event_id] = _settled(event, status="created", graphId=outcome.graph_id)
            continue
        skipped.append(change)
        if outcome.failure is not None:
            updates[event_id] = _settled(event, status="failed", reason=outcome.failure)
            problems.append({"reason": outcome.failure, "userId": change.user_id,
                             "temporary": False, "message":
                             f"outbound event {event_id!r} is marked failed: the user's "
                             "mailbox is not in the cloud (Graph: MailboxNotEnabledForRESTAPI)"})
        else:
            updates[event_id] = {**event, "lastError": outcome.error}
            problems.append({"reason": EVENT_PUSH_FAILED, "userId": change.user_id,
                             "temporary": True, "message":
                             f"outbound event {event_id!r} was not created this run, it stays "
                             f"pending and the next run tries again: {outcome.error}"})
    await store.write_entities("outboundEvents", list(updates.values()), loaded=loaded)
    statuses = [u.get("status") for u in updates.values()]
    progress = {"eventsPosted": len(pushes), "eventsCreated": statuses.count("created"),
                "eventsFailed": statuses.count("failed"), "eventsNotCreated": len(problems),
                "graphRequests": result.requests, "graphThrottled": result.throttled}
    telemetry.log.info("emply_sync.events_pushed", extra={  # ids and counts only
        "runId": run.run_id, "trigger": run.trigger, **progress})
    return base.StepOutcome(EventPushStep.name, dropped=tuple(skipped),
                            errors=tuple(problems), wrote=len(updates), progress=progress)


def _settled(event: Mapping[str, Any], **fields: Any) -> dict[str, Any]:
    """`event` with a final status (and no error left from an earlier attempt)."""
    return {**event, "reason": None, "lastError": None, **fields}


STEP = EventPushStep()
