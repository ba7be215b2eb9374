"""The event-push step (R15): the plan's `event_push` changes, Graph first, then the
Emply side. It comes after the Emply writes.

Read: the look-ups the plan needs (`shared.run.steps.outbound_lookups`). Apply, exactly
once across retries and crashes:

1. the planned outbound events are read again from the store; one Emply changed or
   deleted since the run loaded it is left alone (`concurrent_change`; planned again
   by the next run);
2. each event about to get a Graph write is stored with `attemptedAt` first, so a run
   killed after the write and before step 4 leaves a trace: the next run looks the
   event up (by its mark, or its Graph id) before writing anything, and finds the
   event the POST made, the content the PATCH left (the mark's digest), or the event
   gone after a cancellation or deletion. Graph's `transactionId` is sent with a POST
   but not relied on: Graph documents it only as avoiding redundant POSTs on client
   retries;
3. the writes go through `$batch` within the per-mailbox limit
   (`shared.graph.event_writer`);
4. each event's outcome is stored: `status` and `graphId`, the digests of what M365
   now holds (`pushed`), `reason` / `failedFor` for a failure, `lastError` for a
   temporary error (it keeps `attemptedAt`: the next run looks it up, then tries
   again); an event deleted in M365 at Emply's request is then removed from Emply.

An answer other than planned replaces the planned change in the report (an update or a
cancellation that finds the event gone is `deleted_in_m365`); a temporary error drops
it and is reported (`event_push_failed`). Per-event errors never stop the run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from shared import telemetry
from shared.graph import event_writer, outbound_requests
from shared.graph.outbound_requests import Outcome
from shared.reconcile import event_push, model, outbound
from shared.run.context import Run
from shared.run.mailboxes import gone
from shared.run.steps import base, outbound_lookups
from shared.store import errors as store_errors
from shared.store import protocols

EVENT_PUSH_FAILED = "event_push_failed"
"""Report error: an outbound event's Graph write did not happen this run (tried again)."""
KIND = "outboundEvents"


def read_of(run: Run) -> outbound_lookups.LookupRead | None:
    found = run.reads.get(STEP.name)
    return found if isinstance(found, outbound_lookups.LookupRead) else None


class EventPushStep(base.Step):
    name = "event_push"

    async def read(self, run: Run) -> None:
        found = await outbound_lookups.look_up(run)
        if found is not None:
            run.reads[self.name] = found

    def plan_input(self, run: Run, entra: model.EntraSnapshot) -> model.EntraSnapshot:
        found = read_of(run)
        return entra if found is None else dataclasses.replace(entra, outbound=found.found)

    async def apply(self, run: Run, applied: base.Applied) -> base.StepOutcome:
        planned = applied.pending({model.EVENT_PUSH})
        lost = read_of(run)
        outcome = base.StepOutcome(self.name)
        if planned or (lost and lost.unknown):
            outcome = await push(run, planned)
        if lost and lost.answered:  # the mailbox pass's records of events seen go
            await gone.clear(run.deps.store.mailbox_states(), lost.answered)
        return outcome


@dataclasses.dataclass
class _Work:
    """What one apply does, event by event."""

    stored: dict[str, dict[str, Any]]
    reported: dict[str, model.Change] = dataclasses.field(default_factory=dict)
    """Event id → the change the report says happened to it."""
    writes: dict[str, tuple[model.Change, event_writer.Request]] = dataclasses.field(
        default_factory=dict)
    updates: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    removals: list[str] = dataclasses.field(default_factory=list)
    dropped: list[model.Change] = dataclasses.field(default_factory=list)
    added: list[model.Change] = dataclasses.field(default_factory=list)
    problems: list[dict[str, Any]] = dataclasses.field(default_factory=list)


async def push(run: Run, planned: list[model.Change]) -> base.StepOutcome:
    """Carry out `event_push` changes; see the module's docstring."""
    store, loaded = run.deps.store, run.loaded
    wanted = [str(c.after["id"]) for c in planned]
    work = _Work(await store.read_entities(KIND, wanted, loaded=loaded, skip_conflicts=True))
    for change in planned:
        entity = work.stored.get(str(change.after["id"]))
        work.reported[str(change.after["id"])] = change
        if entity is None:
            work.dropped.append(change)
            work.problems.append(_conflict(change))
        else:
            _prepare(change, entity, work)
    await _mark_attempts(store, loaded, work, run.at)
    sent = await event_writer.send(run.deps.graph, [r for _c, r in work.writes.values()])
    for event_id, (change, request) in work.writes.items():
        answer = sent.answers.get(event_id, event_writer.Answer(None, error="no answer"))
        _settle(change, outbound_requests.outcome(request, answer), work)
    await _write_outcomes(store, loaded, work)
    _report_lost(run, work)
    statuses = [u.get("status") for u in work.updates.values()]
    progress = {"eventsWritten": len(work.writes),
                **{f"events{s.capitalize()}": statuses.count(s)
                   for s in ("created", "updated", "cancelled", "deleted", "failed")},
                "eventsRemoved": len(work.removals), "eventsNotWritten": len(work.problems),
                "graphRequests": sent.requests, "graphBatches": sent.batches,
                "graphThrottled": sent.throttled}
    telemetry.log.info("emply_sync.events_pushed", extra={  # ids and counts only
        "runId": run.run_id, "trigger": run.trigger, **progress})
    return base.StepOutcome(EventPushStep.name, dropped=tuple(work.dropped),
                            added=tuple(work.added), errors=tuple(work.problems),
                            wrote=len(work.updates) + len(work.removals),
                            progress=progress, reusable=not work.problems)


def _prepare(change: model.Change, entity: dict[str, Any], work: _Work) -> None:
    """The event's Graph write, or its settled entity when there is none."""
    action, after = change.after["action"], change.after
    event = outbound.from_entity(entity)
    entra_id, graph_id = change.entra_id, after.get("graphId")
    if action == event_push.FORGET:
        work.removals.append(event.id)
        return
    if action not in event_push.GRAPH_ACTIONS:
        work.updates[event.id] = _settled(entity, after)
        return
    if not entra_id:  # the planner never plans a write for an unlinked user
        raise ValueError(f"outbound event {event.id!r}: a Graph write for an unlinked user")
    if action == event_push.CREATE:
        request = outbound_requests.create(event, entra_id)
    elif action == event_push.UPDATE:
        request = outbound_requests.update(event, entra_id, str(graph_id), after["fields"])
    elif action == event_push.CANCEL:
        request = outbound_requests.cancel(event, entra_id, str(graph_id))
    else:
        request = outbound_requests.delete(event, entra_id, str(graph_id))
    work.writes[event.id] = (change, request)


def _settled(entity: Mapping[str, Any], after: Mapping[str, Any], **more: Any
             ) -> dict[str, Any]:
    """`entity` as M365 holds it after the change (`after`), no error left over."""
    out = {**entity, "status": after["status"], "reason": after.get("reason"),
           "lastError": None, "attemptedAt": None, "failedFor": after.get("failedFor"),
           **more}
    if "graphId" in after and after["status"] != "failed":
        out["graphId"] = after["graphId"]
    if after["status"] in ("created", "updated"):
        out["pushed"] = outbound.digests(outbound.from_entity(entity))
    return out


async def _mark_attempts(store: protocols.EmplyTables, loaded: protocols.LoadedEmply,
                         work: _Work, at: str) -> None:
    """Store `attemptedAt` on every event about to get a Graph write (step 2)."""
    marked = {i: {**work.stored[i], "attemptedAt": at} for i in work.writes}
    for event_id in await _write(store, loaded, list(marked.values())):
        change, _request = work.writes.pop(event_id)
        work.dropped.append(change)
        work.problems.append(_conflict(change))
    for event_id, item in marked.items():
        if event_id in work.writes:
            work.stored[event_id] = item


def _settle(change: model.Change, result: Outcome, work: _Work) -> None:
    """Step 4 for one event: its entity (or removal) from Graph's answer."""
    entity, after = work.stored[str(change.after["id"])], change.after
    action = after["action"]
    if result.failure is not None:
        failed = {**after, "status": "failed", "reason": result.failure,
                  "failedFor": outbound.intent_digest(outbound.from_entity(entity))}
        work.updates[entity["id"]] = _settled(entity, failed)
        _replace(change, failed, work, result.failure)
    elif result.error is not None:
        work.updates[entity["id"]] = {**entity, "lastError": result.error}
        work.dropped.append(change)
        work.problems.append({
            "reason": EVENT_PUSH_FAILED, "userId": change.user_id, "temporary": True,
            "message": f"outbound event {entity['id']!r}: its {action} was not made this "
                       f"run and is tried again by the next: {result.error}"})
    elif after["status"] == "deleted" and action == event_push.DELETE:
        work.removals.append(entity["id"])  # gone from M365, at Emply's request
    elif result.gone:
        gone = {**after, "status": "deleted", "reason": event_push.DELETED_IN_M365,
                "action": event_push.NONE}
        work.updates[entity["id"]] = _settled(entity, gone)
        _replace(change, gone, work, event_push.DELETED_IN_M365)
    else:
        graph_id = result.graph_id if action == event_push.CREATE else after.get("graphId")
        work.updates[entity["id"]] = _settled(entity, {**after, "graphId": graph_id})


def _replace(change: model.Change, after: Mapping[str, Any], work: _Work,
             reason: str) -> None:
    """Report what happened instead of what was planned."""
    work.dropped.append(change)
    work.reported[str(change.after["id"])] = replaced = dataclasses.replace(
        change, reason=reason, after=dict(after))
    words = ("was deleted in M365 by its owner: reported, not created again"
             if reason == event_push.DELETED_IN_M365 else
             f"could not be written to M365 ({reason}); marked failed and not retried "
             "until Emply changes it")
    work.added.append(dataclasses.replace(
        replaced, message=f"outbound event {change.after['id']!r} {words}"))
    work.reported[str(change.after["id"])] = work.added[-1]


async def _write_outcomes(store: protocols.EmplyTables, loaded: protocols.LoadedEmply,
                          work: _Work) -> None:
    """Step 4: the settled entities, then the removals."""
    for event_id in await _write(store, loaded, list(work.updates.values())):
        work.updates.pop(event_id)
        change = work.reported[event_id]
        if change in work.added:
            work.added.remove(change)
        elif change not in work.dropped:
            work.dropped.append(change)
        work.problems.append(_conflict(change))
    if work.removals:
        await store.delete_entities(KIND, [{"id": i} for i in work.removals], loaded=loaded)


async def _write(store: protocols.EmplyTables, loaded: protocols.LoadedEmply,
                 items: list[dict[str, Any]]) -> list[str]:
    """Write these outbound events, guarded by the run's load; one Emply changed since
    is left out (the rest written). Returns the ids left out."""
    left_out: list[str] = []
    while items:
        try:
            await store.write_entities(KIND, items, loaded=loaded)
            return left_out
        except store_errors.ConcurrentChangeError as exc:
            if not any(i["id"] == exc.entity_id for i in items):
                raise
            left_out.append(exc.entity_id)
            items = [i for i in items if i["id"] != exc.entity_id]
    return left_out


def _conflict(change: model.Change) -> dict[str, Any]:
    return {"reason": "concurrent_change", "userId": change.user_id, "temporary": True,
            "message": f"outbound event {change.after['id']!r} was changed by someone else "
                       "(Emply) while the run was under way; the next run plans it again "
                       "from what was written"}


def _report_lost(run: Run, work: _Work) -> None:
    """The events whose write's answer was lost and whose look-up failed this run."""
    lost = read_of(run)
    for event_id, error in sorted((lost.unknown if lost else {}).items()):
        work.problems.append({
            "reason": EVENT_PUSH_FAILED, "temporary": True,
            "message": f"outbound event {event_id!r} could not be looked up in M365, so "
                       f"nothing is written for it this run: {error}"})


STEP = EventPushStep()
