"""One shard of the mailbox pass: the users of a range of buckets, read, planned, written.

A shard reads what Emply keeps for its users (their calendars: one range query) and
what the pass left (`state`), asks Graph for the calendars of the synced mailboxes and
for each mirrored calendar's changes (through the process's `MailboxGate`), reads Emply's
stored events only for the calendars that need them (`mailbox_plan.stored_needed`),
makes the R13/R14 plan of its users (`mailbox_plan.plan_group`), and, when it applies,
writes it in the calendars step's order (events before the calendars they belong to go,
calendars before the events they get) and then the new state. What it holds at once is
its own users' (a few hundred), so a first run of 10,000 users never holds 400,000
events, and the shards of a run may run in one process or in many (`shared.run.mailboxes`).

Per-user faults are the user's (R7): a mailbox Graph will not read (403, throttled past
its retries, …) is reported `mailbox_unavailable`, keeps what Emply holds, and is tried
again by a later run after a back-off; a calendar Emply changed meanwhile (the user's
own choice) leaves that user's changes for the next run (`concurrent_change`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

from shared.graph import events as graph_events
from shared.graph import failures
from shared.graph import mailboxes as graph_mailboxes
from shared.reconcile import convert, mailbox_plan, model
from shared.run.mailboxes import gone as shard_gone
from shared.run.mailboxes import notified
from shared.run.mailboxes import reads as shard_reads
from shared.run.mailboxes import subscriptions as shard_subs
from shared.run.mailboxes import writes as shard_writes
from shared.run.mailboxes.job import ShardDeps, ShardJob, ShardOutcome
from shared.run.mailboxes.state import MailboxState
from shared.store import keys

Json = dict[str, Any]
BACKOFF = (dt.timedelta(0), dt.timedelta(hours=1), dt.timedelta(hours=2),
           dt.timedelta(hours=4), dt.timedelta(hours=8), dt.timedelta(hours=24))
"""R7's back-off: after n failed reads in a row, the next waits BACKOFF[n - 1]."""
MAILBOX_UNAVAILABLE = failures.MAILBOX_UNAVAILABLE


async def run_shard(deps: ShardDeps, job: ShardJob) -> ShardOutcome:
    """Read, plan and (with `job.apply`) write one shard; see the module's docstring."""
    generation = await deps.store.mailbox_side().generation()
    found = await shard_reads.emply_side(deps.store, job)
    outcome = ShardOutcome()
    readable = {u: s.entra_id for u, s in sorted(job.users.items())
                if _to_read(u, s.entra_id, s.since, job, found, generation)}
    if job.waiting:
        outcome.waiting = sum(1 for u, s in job.users.items() if s.since != job.run_id
                              and s.entra_id.casefold() in job.waiting
                              and (job.only is None or u in job.only))
    outcome.asked = set(readable.values())
    planned = await _read_and_plan(deps, job, found, readable, generation, outcome)
    conflicts: set[str] = set()
    if job.apply:
        conflicts = await _write(deps, job, found, readable, generation, planned, outcome)
    outcome.changes = [c for c in planned.plan.changes if c.user_id not in conflicts]
    outcome.errors += [_conflict(u) for u in sorted(conflicts)]
    return outcome


@dataclasses.dataclass(frozen=True)
class _Planned:
    listed: graph_mailboxes.CalendarRead
    plan: mailbox_plan.GroupPlan
    stored: tuple[model.EmplyEvent, ...]
    answered: shard_writes.Read
    gone: shard_gone.Seen
    """The sync's own events the read saw go (R15 looks them up next run)."""


async def _read_and_plan(deps: ShardDeps, job: ShardJob, found: shard_reads.Found,
                         readable: Mapping[str, str], generation: str,
                         outcome: ShardOutcome) -> _Planned:
    side = deps.store.mailbox_side()
    by_entra = {e.casefold(): u for u, e in readable.items()}
    listed = await graph_mailboxes.read_calendars(deps.graph, readable.values(),
                                                  gate=deps.gate)
    own = await shard_reads.own_events(deps.store, job, readable)
    ours = frozenset().union(*own.values())
    mailboxes = convert.mailboxes(listed.mailboxes)
    known = {(u, c): k for u, state in found.states.items()
             for c, k in state.known(job.window, generation).items()}
    snapshot = found.snapshot()
    r13 = mailbox_plan.r13_changes(snapshot, mailboxes, job.settings)
    wanted = shard_reads.wanted_events(snapshot, mailboxes, known, r13, by_entra)
    read = await graph_events.read_events(deps.graph, wanted, job.window, gate=deps.gate)
    reads = {(by_entra[e.casefold()], c): None if r is None else
             model.CalendarEvents(r.full, r.events, r.removed)
             for (e, c), r in read.calendars.items()}
    need = mailbox_plan.stored_needed(snapshot, mailboxes,
                                      {k: r for k, r in reads.items() if r is not None},
                                      known, job.settings, r13, own=ours)
    stored = await shard_reads.stored_events(side, job, need,
                                             everything=not job.settings.enabled)
    plan = mailbox_plan.plan_group(dataclasses.replace(snapshot, events=stored), mailboxes,
                                   {k: reads[k] for k in need if k in reads}, job.settings,
                                   need, r13, own=ours)
    _count(outcome, listed, read)
    answered = shard_writes.Read(
        listed.mailboxes,
        {(by_entra[e.casefold()], c): r.delta_link if r else None
         for (e, c), r in read.calendars.items()},
        _failures(listed, read, by_entra, outcome),
        {(by_entra[e.casefold()], c) for e, c in read.failures})
    return _Planned(listed, plan, stored, answered,
                    shard_gone.seen_gone(listed.mailboxes, read, own, job.window))


async def _write(deps: ShardDeps, job: ShardJob, found: shard_reads.Found,
                 readable: Mapping[str, str], generation: str, planned: _Planned,
                 outcome: ShardOutcome) -> set[str]:
    """The plan written, then the sync's own events seen go, the subscriptions, the
    new state; the users left out for a concurrent change."""
    states = deps.store.mailbox_states()
    conflicts = await shard_writes.write_plan(deps.store.mailbox_side(), planned.plan, found,
                                              planned.stored, outcome)
    await shard_gone.record(states, planned.gone)
    subscribed = await shard_subs.keep(deps.graph, job, found, planned.listed.mailboxes,
                                       readable, planned.answered.failed)
    await states.write_states(shard_writes.new_states(
        found, job, generation, planned.answered, planned.plan, conflicts, subscribed))
    await notified.clear(states, job.dirty,
                         [e for u, e in readable.items() if u not in conflicts])
    return conflicts


def _count(outcome: ShardOutcome, listed: graph_mailboxes.CalendarRead,
           read: graph_events.EventRead) -> None:
    outcome.mailboxes = len(listed.mailboxes)
    outcome.calendars = len(read.calendars)
    outcome.requests = listed.requests + read.requests
    outcome.throttled = listed.throttled + read.throttled


def _to_read(user_id: str, entra_id: str, since: str | None, job: ShardJob, found: Any,
             generation: str) -> bool:
    """Whether the shard reads this synced mailbox now: not one synced only from the next
    run on, nor one backing off (R7); in a swept bucket every one, elsewhere one Graph
    said changed, one new to the pass, or one whose Emply side changed meanwhile."""
    state = found.states.get(user_id)
    if since == job.run_id:
        return False
    if job.waiting is not None:
        if entra_id.casefold() in job.waiting:
            return False
    elif _backing_off(state, job.now):
        return False
    if job.swept is None or keys.user_bucket(user_id) in job.swept \
            or entra_id.casefold() in job.dirty or state is None \
            or state.generation != generation:
        return True
    kept = found.calendars.get(user_id, {})
    return kept.keys() != state.calendars.keys() or any(
        (cal.enabled, cal.is_default) != (state.calendars[c].enabled,
                                          state.calendars[c].is_default)
        for c, (cal, _etag) in kept.items())


def _backing_off(state: MailboxState | None, now: dt.datetime) -> bool:
    """Whether a mailbox that failed lately waits before it is read again (R7)."""
    if state is None or not state.failures or state.failed_at is None:
        return False
    failed = dt.datetime.fromisoformat(state.failed_at.replace("Z", "+00:00"))
    return now < failed + BACKOFF[min(state.failures, len(BACKOFF)) - 1]


def _failures(listed: graph_mailboxes.CalendarRead, read: graph_events.EventRead,
              by_entra: Mapping[str, str], outcome: ShardOutcome) -> set[str]:
    """The users whose mailbox could not be read this run, each reported once (its
    calendar list's failure, else its first calendar's)."""
    failed: dict[str, failures.UserReadFailure] = {}
    for entra_id, why in listed.failures.items():
        failed[by_entra[entra_id.casefold()]] = why
    for (entra_id, _calendar), why in sorted(read.failures.items()):
        failed.setdefault(by_entra[entra_id.casefold()], why)
    outcome.failed.update((why.entra_id, why) for why in failed.values())
    for user_id, why in sorted(failed.items()):
        outcome.errors.append({**why.as_error(), "userId": user_id, "rule": "R7"})
    return set(failed)


def _conflict(user_id: str) -> Json:
    return {"reason": "concurrent_change", "userId": user_id, "temporary": True,
            "message": "the user's calendars were changed in Emply while the run was "
                       "writing them; they are left as they are and the next run plans "
                       "them again"}

