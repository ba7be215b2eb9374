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
from collections.abc import Callable, Collection, Mapping

from shared.graph import failures
from shared.reconcile import convert, model
from shared.run import report as run_report
from shared.run import user_faults as faults
from shared.run.context import Deps, Run
from shared.run.mailboxes import passes, queued
from shared.run.mailboxes.state import BucketIndex
from shared.run.steps import base, user_faults

MAILBOX_UNAVAILABLE = failures.MAILBOX_UNAVAILABLE
DIRECTORY_KINDS = frozenset({model.LINK_USER, model.CREATE_USER, model.REACTIVATE_USER,
                             model.DEACTIVATE_USER})


class MailboxesStep(base.Step):
    name = "mailboxes"

    async def apply(self, run: Run, applied: base.Applied) -> base.StepOutcome:
        index, changed = await _index(run, applied.pending(DIRECTORY_KINDS), write=True)
        return await _pass(run.deps, run.run_id, run.settings, run.started, index,
                           trigger=run.trigger, changed=changed, run=run)

    async def preview(self, run: Run, plan: model.Plan) -> base.StepOutcome:
        index, changed = await _index(
            run, [c for c in plan.changes if c.kind in DIRECTORY_KINDS], write=False)
        return await _pass(run.deps, run.run_id, run.settings, run.started, index,
                           trigger=run.trigger, changed=changed, apply=False, run=run)


async def _index(run: Run, changes: list[model.Change], *, write: bool
                 ) -> tuple[dict[str, BucketIndex], list[str]]:
    """The synced users after this run, by bucket, and the buckets where they changed;
    written (with the settings) when they changed and the run applies."""
    synced = passes.synced_after(run.doc, run.directory.mirror["users"], changes,
                                 run.settings, run.run_id)
    new = passes.by_bucket(synced)
    states = run.deps.store.mailbox_states()
    old = await passes.read_index(states)
    if not write:
        return new, sorted(b for b in {*new, *old} if new.get(b, {}) != old.get(b, {}))
    changed = await passes.update_index(states, new, old)
    await passes.save_settings(states, run.doc.get("settings") or {})
    return new, changed


class OneUserStep(base.Step):
    """One user now (`shared.run.on_demand`): the pass for the users the run acts on
    alone (`focus`: the Emply users named), in this process, whatever the settings say;
    the index is left as the last full run wrote it."""

    name = "mailboxes"

    def __init__(self, focus: Callable[[Run], Callable[[model.EmplyUser], bool]]) -> None:
        self.focus = focus

    async def apply(self, run: Run, applied: base.Applied) -> base.StepOutcome:
        return await self._pass(run, applied.pending(DIRECTORY_KINDS), apply=True)

    async def preview(self, run: Run, plan: model.Plan) -> base.StepOutcome:
        return await self._pass(run, [c for c in plan.changes if c.kind in DIRECTORY_KINDS],
                                apply=False)

    async def _pass(self, run: Run, changes: list[model.Change], *, apply: bool
                    ) -> base.StepOutcome:
        names = self.focus(run)
        only = frozenset(u["id"] for u in run.doc.get("users", ())
                         if names(convert.emply_user(u)))
        if not only:
            return base.StepOutcome(self.name)
        synced = passes.synced_after(run.doc, run.directory.mirror["users"], changes,
                                     run.settings, run.run_id)
        index = passes.by_bucket({u: s for u, s in synced.items() if u in only})
        found = await passes.run_pass(run.deps.store, run.deps.graph, run_id=run.run_id,
                                      settings=run.settings, now=run.started, index=index,
                                      apply=apply, config=run.deps.mailboxes, only=only,
                                      waiting=await _waiting(run))
        return await _outcome(self.name, found, run)


async def _waiting(run: Run | None) -> frozenset[str] | None:
    """The mailboxes whose next try is still to come (the run's per-user faults, R7;
    none for an on-demand run, which tries its user now). None without a run."""
    if run is None:
        return None
    return _waiting_in(await user_faults.book(run), try_now=run.try_waiting)


def _waiting_in(book: user_faults.Book, *, try_now: bool = False) -> frozenset[str]:
    if try_now:
        return frozenset()
    return frozenset(e.casefold() for e in book.stored.waiting(user_faults.MAILBOX, book.now))


async def _outcome(name: str, found: passes.PassOutcome, run: Run | None = None, *,
                   book: user_faults.Book | None = None) -> base.StepOutcome:
    """The pass's outcome as a step's; with `run` (or a `book` of its own), its mailbox
    failures recorded in the per-user faults (`shared.run.steps.user_faults`: attempts,
    next try), which report them instead of the pass."""
    errors, skips = list(found.errors), {}
    if run is not None:
        book = await user_faults.book(run)
    if book is not None:
        errors = [e for e in errors if not (e.get("reason") == MAILBOX_UNAVAILABLE
                                            and e.get("rule") == "R7")]
        errors += user_faults.book_noted(book, user_faults.MAILBOX, "calendars",
                                         found.asked, list(found.failed.values()))
        if found.waiting:
            skips[user_faults.RETRY_LATER[user_faults.MAILBOX]] = found.waiting
    return base.StepOutcome(name, added=tuple(found.changes), errors=tuple(errors),
                            progress=found.progress(), wrote=0, reusable=True,
                            requests=found.requests, throttled=found.throttled, skips=skips)


async def run_unchanged(deps: Deps, run_id: str, started: dt.datetime, *, apply: bool,
                        trigger: str) -> base.StepOutcome | None:
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
    book = user_faults.Book(faults.Faults.from_json(
        await deps.store.load_state_part(faults.STATE_PART)), started)
    outcome = await _pass(deps, run_id, settings, started, index, trigger=trigger,
                          changed=(), apply=apply, book=book)
    if apply and book.result() != book.stored:
        await deps.store.save_state_part(faults.STATE_PART, book.result().to_json())
    return outcome


async def _pass(deps: Deps, run_id: str, settings: model.Settings, started: dt.datetime,
                index: Mapping[str, BucketIndex], *, trigger: str,
                changed: Collection[str], apply: bool = True,
                run: Run | None = None, book: user_faults.Book | None = None
                ) -> base.StepOutcome:
    """The pass, in this process or (`EMPLY_SYNC_MAILBOX_SHARDS=queue`) on the queue.
    With nobody synced (calendar sync off, R17) it only removes what Emply keeps, in
    this process (no mailbox is read), and once that left nothing, not again until an
    import gives the Emply side a new generation."""
    store, states = deps.store, deps.store.mailbox_states()
    if not any(index.values()):
        generation = await store.mailbox_side().generation()
        if await passes.cleared(states) == generation:
            return base.StepOutcome(MailboxesStep.name)
        found = await passes.run_pass(store, deps.graph, run_id=run_id, settings=settings,
                                      now=started, index=index, apply=apply,
                                      config=deps.mailboxes)
        if apply and not found.errors:
            await passes.mark_cleared(states, generation)
        return await _outcome(MailboxesStep.name, found)
    work = await passes.plan_work(store, deps.mailboxes, trigger=trigger,
                                  schedule=deps.schedule, now=started, index=index,
                                  changed=changed)
    if apply and deps.mailboxes.queued and deps.shard_queue is not None:
        count, busy = await queued.enqueue(store, deps.shard_queue, run_id=run_id,
                                           started=started, index=index,
                                           config=deps.mailboxes, work=work)
        shards = {"queued": count, "bucketsHeld": busy}
        return base.StepOutcome(MailboxesStep.name, progress={"mailboxShardsQueued": count},
                                shards=shards if count else None)
    found = await passes.run_pass(store, deps.graph, run_id=run_id, settings=settings,
                                  now=started, index=index, apply=apply,
                                  config=deps.mailboxes, work=work,
                                  waiting=_waiting_in(book) if book else await _waiting(run))
    return await _outcome(MailboxesStep.name, found, run, book=book)


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
        counts=merged, errors=(*report.errors, *outcome.errors), entra_read=read
    ).with_skips(outcome.skips)


STEP = MailboxesStep()
