"""One run: lease → state → (nothing changed? the last outcome stands) → read → one
pure plan → apply, step by step → one report.

Both triggers (timer and HTTP) and the CLI call `shared.app.boundary.sync`, which opens
the store and the Graph client, then `run_sync`. The run is `STEPS` (their order is
the order they read and apply in; see `shared.run.steps.base` for a step's shape):
each step reads what it needs, `shared.reconcile.planner.plan` makes the one pure plan
from everything read, and a real run applies it step by step; the steps' outcomes are
folded into the report once, at the end. A dry run is the same pipeline that stops
before applying. A run that cannot read the directory fails before anything is applied,
and its delta links do not advance (R7). Every run, dry or real, failed or not, leaves
a report and one telemetry record, including a run that fails before it starts (storage
refusing the lease, a bad app setting). Failures are named by `shared.errors`
(temporary or permanent, with a reason code); anything else is a bug: recorded, logged
with its traceback and raised.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import gc
import time
from collections.abc import Iterator, Sequence
from typing import Any

from shared import errors, telemetry
from shared.reconcile import convert, model, planner
from shared.run import disabled, indexed, indexes, lease, prepare, unchanged
from shared.run import report as run_report
from shared.run import state as sync_state
from shared.run.context import Clock, Deps, Run
from shared.run.emply_index import EmplyIndex
from shared.run.mailboxes import gone, shard_runs
from shared.run.recorder import Recorder as Recorder
from shared.run.steps import (
    base,
    calendars,
    change_feed,
    directory,
    event_push,
    mailboxes,
    photos,
    user_faults,
    write_back,
)
from shared.run.steps import (
    sync_state as sync_state_step,
)
from shared.store import errors as store_errors
from shared.store import protocols

STEPS: tuple[base.Step, ...] = (
    photos.STEP,  # first: a photo's blob is written before its user's `photo` field
    directory.STEP,
    calendars.STEP,  # R15's read; R13 and R14 are the mailbox pass's
    write_back.STEP,  # Entra writes after the Emply ones
    event_push.STEP,
    mailboxes.STEP,  # the mailbox pass, a shard at a time: after R15's pushes (R14
    # leaves the sync's own events out)
    user_faults.STEP,  # the per-user read faults of the steps above, kept for back-off
    sync_state_step.STEP,  # after every write: a failed run does not advance delta
    change_feed.STEP,  # last: what the run did, in the feed
)
DISABLED_STEPS: tuple[base.Step, ...] = (disabled.STEP, mailboxes.STEP, change_feed.STEP)
"""R17: the integration removed (the mailbox pass removes every calendar and event)."""


def steps_for(settings: model.Settings) -> tuple[base.Step, ...]:
    return STEPS if settings.enabled else DISABLED_STEPS


async def read_all(run: Run, steps: Sequence[base.Step]) -> None:
    for step in steps:
        await step.read(run)


def snapshots(run: Run, steps: Sequence[base.Step]
              ) -> tuple[model.EntraSnapshot, model.EmplySnapshot]:
    """The planner's view of everything the run read."""
    entra = convert.entra_snapshot(run.directory.mirror)
    for step in steps:
        entra = step.plan_input(run, entra)
    return entra, convert.emply_snapshot(run.doc)


def make_plan(run: Run, steps: Sequence[base.Step], approve: model.Approval | None = None,
              approve_deletions: model.Approval | None = None) -> model.Plan:
    """The one pure plan of everything the run read. The snapshots are built here and
    not kept: at 100,000 users they are tens of MB that applying a plan does not need."""
    entra, emply = snapshots(run, steps)
    return planner.plan(entra, emply, run.settings, run.state.planner_state(), run.started,
                        approve_deactivations=approve,
                        approve_deletions=approve_deletions)


async def run_sync(
    deps: Deps,
    *,
    trigger: str,
    dry_run: bool = False,
    approve_deactivations: model.Approval | int | None = None,
    approve_deletions: model.Approval | None = None,
    run_id: str | None = None,
    queued_at: str | None = None,
) -> dict[str, Any]:
    """One run; returns its report. Raises `RunInProgress` when another run holds the lease.
    `approve_deactivations`: R7's approval (a bare number is its count);
    `approve_deletions`: of the Entra deletions the guard held (R9 delete). `run_id` and
    `queued_at`: those of a run requested earlier and queued (`shared.app.manual_runs`)."""
    if isinstance(approve_deactivations, int):
        approve_deactivations = model.Approval(count=approve_deactivations)
    started = deps.clock()
    recorder = Recorder(deps.store, run_report.new_report(
        trigger, dry_run, started, run_id=run_id, queued_at=queued_at))
    held: lease.Held | None = None
    try:
        if dry_run:
            await lease.refuse_if_running(deps.store, deps.clock())
        else:
            held = await lease.take(deps.store, recorder.report.run_id, trigger)
    except store_errors.RunInProgress:
        raise  # not a run: the caller answers 409 / exit 3
    except Exception as exc:
        report = recorder.report.to_json()
        await record_unstarted(report, exc, recorder.clock0, deps.clock, deps.store)
        return report
    if held is not None:
        await lease.mark_dead_runs(deps.store, recorder.report.run_id, started)
    try:
        with paused_gc():
            await _run(deps, recorder, started, held, approve_deactivations,
                       approve_deletions)
    finally:
        if held is not None:
            await held.release()
        if not recorder.logged:
            telemetry.log_run(recorder.report.to_json())
    return recorder.report.to_json()


async def _run(deps: Deps, recorder: Recorder, started: dt.datetime, held: lease.Held | None,
               approve: model.Approval | None, approve_deletions: model.Approval | None
               ) -> None:
    """Fill the recorder's report in; a run failure is recorded in it, a bug is recorded
    and raised."""
    try:
        await _work(deps, recorder, started, held, approve, approve_deletions)
    except Exception as exc:  # recorded; re-raised when it is a bug, not a run failure
        recorder.failed(exc)
        if errors.classify(exc) is None:
            raise
    finally:
        shards = recorder.report.mailbox_shards
        if shards:  # finished when its mailbox shards are (`shared.run.mailboxes.queued`)
            recorder.report = dataclasses.replace(
                recorder.report, status="running", progress={"phase": "mailboxes"},
                mailbox_shards={**shards, "statusWhenDone": recorder.report.status})
        else:
            recorder.report = dataclasses.replace(
                recorder.report, finished_at=run_report.iso(deps.clock()), progress=None,
                duration_ms=int((time.monotonic() - recorder.clock0) * 1000))
        await save_report(deps.store, recorder.report.to_json())
        if shards:
            telemetry.log_run(recorder.report.to_json())
            recorder.logged = True
            await shard_runs.directory_done(deps.store, recorder.report.run_id, deps.clock())


async def _work(deps: Deps, recorder: Recorder, started: dt.datetime, held: lease.Held | None,
                approve: model.Approval | None, approve_deletions: model.Approval | None
                ) -> None:
    """The run's work. The bulky values (what was read, the Emply copy, the snapshots)
    live only as long as they are needed, and the report's list of changes is made last,
    once they are gone: that keeps a 100,000-user run's peak memory down."""
    report = recorder.report
    await deps.store.save_run(report.to_json())
    state, warnings = await sync_state.load_state(deps.store)
    check = await unchanged.check(deps.store, deps.graph, state, started=started,
                                  approve=approve or approve_deletions)
    if check.residual is not None and check.round is not None and not await gone.pending(
            deps.store.mailbox_states()):  # events the pass saw go: R15 looks them up
        recorder.report = unchanged.reused_report(report, check.residual, check.round,
                                                  warnings)
        recorder.progress("unchanged", reusedPlanOf=check.residual.run_id)
        if held is not None:
            held.check()
            await sync_state.save_state(deps.store, state.after_unchanged(
                check.round.delta_links, report.run_id))
        await _mailboxes_of_unchanged(deps, recorder, started, apply=held is not None)
        return
    run = await _indexed_or_read(deps, recorder, started, held, (approve, approve_deletions),
                                 (state, warnings), check)
    if run is None:
        return
    steps = steps_for(run.settings)
    await read_all(run, steps)
    await recorder.saved_progress("read", **_read_counts(run))
    plan = recorder.plan = make_plan(run, steps, approve, approve_deletions)
    await recorder.saved_progress("planned", changes=len(plan.changes), held=len(plan.held))
    recorder.report = recorder.report.with_outcome(
        run_report.Outcome.of(plan), read_summary(run), plan.counts(), warnings=run.warnings
    ).with_skips(run.skips)
    if approve is not None and not any(
        c.kind == model.DEACTIVATE_USER for c in (*plan.held, *plan.changes)
    ):  # held Entra deletions (R9) are not what this approval is for
        recorder.report = recorder.report.with_error(_approval_unused(approve))
    if held is None:  # a dry run: what would be done
        recorder.report = dataclasses.replace(
            recorder.report, changes=[c.to_json() for c in plan.changes])
        for step in steps:
            preview = await step.preview(run, plan)
            if preview.added or preview.errors or preview.requests:
                recorder.report = mailboxes.with_pass(recorder.report, preview,
                                                      recorder.report.counts)
        return
    held.check()  # the lease was lost: another run may be applying
    recorder.applying = True
    applied = await apply_steps(run, steps, plan, recorder)
    del run  # with it the loaded Emply copy (about 100 MB at 100,000 users)
    recorder.report = dataclasses.replace(
        recorder.report, changes=[c.to_json() for c in applied.changes()],
        counts=applied.counts(), errors=(*recorder.report.errors, *applied.errors()),
        entra_read=_with_requests(recorder.report.entra_read, *applied.requests),
        mailbox_shards=applied.shards).with_skips(applied.skips())


async def _indexed_or_read(deps: Deps, recorder: Recorder, started: dt.datetime,
                           held: lease.Held | None,
                           approvals: tuple[model.Approval | None, model.Approval | None],
                           loaded: tuple[sync_state.SyncState, tuple[run_report.Json, ...]],
                           check: unchanged.Check) -> Run | None:
    """A run that plans only what changed when the indexes cover it (`shared.run.indexed`:
    run here, None returned); otherwise both sides read whole, the `Run` to plan."""
    state, warnings = loaded
    saved_entra, saved_emply, more = await indexes.load(deps.store, state)
    emply = await indexes.emply_side(deps.store, saved_emply)
    settings = _settings(emply.index)
    if indexed.covers(settings, emply.index):
        entra = await indexes.entra_side(
            deps.graph, saved_entra, state.mirror_head, check.changes,
            tenant_id=settings.tenant_id, keep=indexes.keeper(emply.index),
            configured=[g.group_id for g in settings.groups])
        sides = indexed.Sides(entra, emply, settings, state, started, STEPS)
        await indexed.run_indexed(deps, recorder, held, *approvals, sides, (*warnings, *more))
        return None
    report = recorder.report
    return await prepare.prepare(
        deps, started=started, run_id=report.run_id, trigger=report.trigger,
        applying=held is not None, use_cache=True, loaded=(state, (*warnings, *more)),
        changes=check.changes, read_when_disabled=False, saved=(saved_entra, emply.index))


async def _mailboxes_of_unchanged(deps: Deps, recorder: Recorder, started: dt.datetime,
                                  *, apply: bool) -> None:
    """A run that reuses the last outcome still runs the mailbox pass (calendars and
    events are not in Graph's delta); its changes are the run's, recorded in the feed."""
    found = await mailboxes.run_unchanged(deps, recorder.report.run_id, started,
                                          apply=apply, trigger=recorder.report.trigger)
    if found is None:
        return
    recorder.report = mailboxes.with_pass(recorder.report, found, recorder.report.counts)
    if found.progress:
        recorder.progress(found.step, **found.progress)
    if apply:
        error = await change_feed.flush_feed(deps.store, deps.clock()) or (
            await change_feed.record_changes(deps.store, recorder.report.run_id,
                                             [c.to_json() for c in found.added],
                                             deps.clock()) if found.added else None)
        if error:
            recorder.report = recorder.report.with_error(error)


def _with_requests(read: run_report.EntraReadSummary | None, requests: int, throttled: int
                   ) -> run_report.EntraReadSummary | None:
    if read is None or not (requests or throttled):
        return read
    return dataclasses.replace(read, requests=read.requests + requests,
                               throttled=read.throttled + throttled)


async def apply_steps(run: Run, steps: Sequence[base.Step], plan: model.Plan,
                      recorder: Recorder) -> base.Applied:
    """Each step's part of the plan, in order; what each did, folded."""
    applied = base.Applied(plan)
    for step in steps:
        outcome = await step.apply(run, applied)
        applied = applied.then(outcome)
        if outcome.progress:
            recorder.progress(step.name, **outcome.progress)
    return applied


def _settings(emply: EmplyIndex) -> model.Settings:
    if not emply.settings:
        raise errors.NotConfigured(
            "the integration has no settings: import an Emply state file with a 'settings' "
            "section first (emply-sync emply import FILE)"
        )
    return convert.settings(emply.settings)


def _approval_unused(approve: model.Approval) -> run_report.Json:
    return {"reason": "approval_unused",
            "message": f"--approve-deactivations {approve} was given but this run holds no "
            "deactivations; nothing was approved"}


def _read_counts(run: Run) -> dict[str, Any]:
    found = calendars.read_of(run)  # R15's: the mailbox pass reads when it applies
    return {"entraUsers": len(run.directory.mirror["users"]),
            "entraGroups": len(run.directory.mirror["groups"]),
            "emplyUsers": len(run.doc.get("users", ())),
            "calendarUsers": len(found.mailboxes) if found else 0,
            "fullRead": run.directory.full_read}


def read_summary(run: Run) -> run_report.EntraReadSummary:
    """Graph's requests and 429s of the whole read: the directory and every step's."""
    requests, throttled = base.usage(run)
    read = run.directory
    return run_report.EntraReadSummary(full_read=read.full_read, reason=read.full_read_reason,
                                       requests=read.requests + requests,
                                       throttled=read.throttled + throttled)


async def save_report(store: protocols.RunLog, report: dict[str, Any]) -> None:
    try:
        await store.save_run(report)
    except Exception:  # the run's outcome stands; losing its record is logged, not raised
        telemetry.log.exception("emply_sync.report_not_saved", extra={"runId": report["runId"]})


async def record_unstarted(report: dict[str, Any], exc: BaseException, clock0: float,
                           clock: Clock, store: protocols.RunLog | None) -> None:
    """Fill in and record a run that failed before it started: its report (when storage
    takes it) and its telemetry record (always, so the failed-run alert fires). A bug
    is logged with its traceback and raised after that."""
    error = run_report.failure(exc)
    report.update({"status": "failed", "failedBeforeStart": True,
                   "errors": [*report.get("errors", ()), error],
                   "finishedAt": run_report.iso(clock()),
                   "durationMs": int((time.monotonic() - clock0) * 1000)})
    if error["reason"] == errors.BUG_REASON:
        telemetry.log.error("emply_sync.bug", exc_info=exc, extra={
            "runId": report["runId"], "trigger": report["trigger"]})
    if store is not None:
        await save_report(store, report)
    telemetry.log_run(report)
    if errors.classify(exc) is None:
        raise exc


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Only young-generation collections during a run.

    A run creates hundreds of thousands of long-lived objects at once (the Entra mirror,
    the Emply side, the plan); the collector's older generations would rescan them again
    and again (measured at 100,000 users: 40% of planning and 60% of converting time).
    Switching the collector off altogether kept every cyclic piece of garbage instead:
    each HTTP response is one (httpx and azure-core link a response and its stream), so a
    100,000-user read held its 100 Graph pages, 45 MB, until the run ended. Young
    collections look only at objects allocated since the previous one, so they free
    such cycles for little time; what survives moves on and is not scanned again. So a
    response still in use at a young collection is never freed: the Graph client breaks
    httpx's cycle itself once a body is read (`shared.graph.client`).
    """
    was_enabled = gc.isenabled()
    thresholds = gc.get_threshold()
    gc.set_threshold(_YOUNG_GC_EVERY, 1 << 30, 1 << 30)
    gc.enable()
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        if not was_enabled:
            gc.disable()


_YOUNG_GC_EVERY = 20_000
"""Net new container objects between two young collections (CPython's default: 700)."""

