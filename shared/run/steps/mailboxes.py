"""The mailboxes step: R13's calendars and R14's events, by the mailbox pass.

After the directory is applied, the pass (`shared.run.mailboxes.passes`) syncs the
calendars and events of every user whose calendars are synced, a shard of users at a
time: it reads Graph for those mailboxes, plans them (`shared.reconcile.mailbox_plan`,
the same rules as the one plan), writes them and remembers what it left. Who is synced
comes from what this run planned (`passes.synced_after`: a user this run links, creates
or reactivates gets its calendars from the next run on, one this run deactivates loses
them now), kept in the pass's index for the runs that find the directory unchanged
(`run_unchanged`). R17 (the integration removed) syncs nobody: every shard removes what
Emply keeps. A dry run previews the same (Graph read, nothing written).

The pass's changes are added to the run's report; its Graph requests are counted with
the run's reads. The directory's outcome stays reusable by an unchanged next run: the
pass runs in every run anyway.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping

from shared.reconcile import convert, model
from shared.run import report as run_report
from shared.run.context import Deps, Run
from shared.run.mailboxes import passes, queued
from shared.run.mailboxes.state import BucketIndex
from shared.run.steps import base

DIRECTORY_KINDS = frozenset({model.LINK_USER, model.CREATE_USER, model.REACTIVATE_USER,
                             model.DEACTIVATE_USER})


class MailboxesStep(base.Step):
    name = "mailboxes"

    async def apply(self, run: Run, applied: base.Applied) -> base.StepOutcome:
        index = await _index(run, applied.pending(DIRECTORY_KINDS), write=True)
        return await _pass(run.deps, run.run_id, run.settings, run.started, index)

    async def preview(self, run: Run, plan: model.Plan) -> base.StepOutcome:
        index = await _index(run, [c for c in plan.changes if c.kind in DIRECTORY_KINDS],
                             write=False)
        found = await passes.run_pass(run.deps.store, run.deps.graph, run_id=run.run_id,
                                      settings=run.settings, now=run.started, index=index,
                                      apply=False, config=run.deps.mailboxes)
        return _outcome(self.name, found)


async def _index(run: Run, changes: list[model.Change], *, write: bool
                 ) -> dict[str, BucketIndex]:
    """The synced users after this run, by bucket; written (with the settings) when they
    changed and the run applies."""
    synced = passes.synced_after(run.doc, run.directory.mirror["users"], changes,
                                 run.settings, run.run_id)
    new = passes.by_bucket(synced)
    if write:
        states = run.deps.store.mailbox_states()
        await passes.update_index(states, new, await passes.read_index(states))
        await passes.save_settings(states, run.doc.get("settings") or {})
    return new


def _outcome(name: str, found: passes.PassOutcome) -> base.StepOutcome:
    return base.StepOutcome(name, added=tuple(found.changes), errors=tuple(found.errors),
                            progress=found.progress(), wrote=0, reusable=True,
                            requests=found.requests, throttled=found.throttled)


async def run_unchanged(deps: Deps, run_id: str, started: dt.datetime, *, apply: bool
                        ) -> base.StepOutcome | None:
    """The pass of a run that found the directory and the Emply side unchanged (it reuses
    the last outcome): the index and settings as the last run left them. None when no
    run has left settings (calendars never synced)."""
    states = deps.store.mailbox_states()
    raw = await passes.load_settings(states)
    if raw is None:
        return None
    settings = convert.settings(raw)
    if not (settings.enabled and settings.calendar_sync):
        return None
    index = await passes.read_index(states)
    if apply:
        return await _pass(deps, run_id, settings, started, index)
    found = await passes.run_pass(deps.store, deps.graph, run_id=run_id, settings=settings,
                                  now=started, index=index, apply=False,
                                  config=deps.mailboxes)
    return _outcome(MailboxesStep.name, found)


async def _pass(deps: Deps, run_id: str, settings: model.Settings, started: dt.datetime,
                index: Mapping[str, BucketIndex]) -> base.StepOutcome:
    """The pass, in this process or (`EMPLY_SYNC_MAILBOX_SHARDS=queue`) on the queue.
    With nobody synced (calendar sync off, R17) it only removes what Emply keeps, in
    this process (no mailbox is read), and once that left nothing, not again until an
    import gives the Emply side a new generation."""
    if not any(index.values()):
        states = deps.store.mailbox_states()
        generation = await deps.store.mailbox_side().generation()
        if await passes.cleared(states) == generation:
            return base.StepOutcome(MailboxesStep.name)
        found = await passes.run_pass(deps.store, deps.graph, run_id=run_id,
                                      settings=settings, now=started, index=index,
                                      apply=True, config=deps.mailboxes)
        if not found.errors:
            await passes.mark_cleared(states, generation)
        return _outcome(MailboxesStep.name, found)
    if deps.mailboxes.queued and deps.shard_queue is not None:
        count, busy = await queued.enqueue(deps.store, deps.shard_queue, run_id=run_id,
                                           started=started, index=index,
                                           config=deps.mailboxes)
        shards = {"queued": count, "bucketsHeld": busy}
        return base.StepOutcome(MailboxesStep.name, progress={"mailboxShardsQueued": count},
                                shards=shards if count else None)
    found = await passes.run_pass(deps.store, deps.graph, run_id=run_id, settings=settings,
                                  now=started, index=index, apply=True,
                                  config=deps.mailboxes)
    return _outcome(MailboxesStep.name, found)


def with_pass(report: run_report.RunReport, outcome: base.StepOutcome,
              counts: Mapping[str, int]) -> run_report.RunReport:
    """`report` with a pass's changes, counts, errors and Graph requests added (or the
    shards it queued)."""
    if outcome.shards:
        report = dataclasses.replace(report, mailbox_shards=outcome.shards)
    merged = dict(counts)
    for change in outcome.added:
        merged[change.kind] = merged.get(change.kind, 0) + 1
    read = report.entra_read
    if read is not None:
        read = dataclasses.replace(read, requests=read.requests + outcome.requests,
                                   throttled=read.throttled + outcome.throttled)
    return dataclasses.replace(
        report, changes=[*report.changes, *(c.to_json() for c in outcome.added)],
        counts=merged, errors=(*report.errors, *outcome.errors), entra_read=read)


STEP = MailboxesStep()
