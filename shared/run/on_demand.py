"""One user now: an on-demand run (`emply-sync sync --user KEY`,
`POST /api/users/{key}/sync`), with the steps that user went through.

The same run as the timer's, narrowed to one user:

- the lease (R1): a real run takes it (`RunInProgress` while another run holds it), a
  dry run is refused while one does, as a full run is;
- the Emply side from the store, and the user's directory read directly from Graph
  (`shared.run.user_view`), not through delta: nothing here moves a delta link;
- every step reads what it needs for that user (its photo whatever its slot, its
  calendars and their events); one pure plan (`shared.reconcile.planner.plan` with the
  view's `focus`), which looks at every Emply user and R7's window and acts on that user
  alone; then the steps apply it (`STEPS`: the full run's, with `guard_window` in place
  of `sync_state`, and the mailbox pass for that user's mailbox alone);
- recorded as a run with trigger `on_demand` (run history, telemetry, the change feed),
  its report carrying the answer (`shared.reconcile.answer`) under `user`;
- the Emply index it was served from kept current with its writes
  (`shared.run.served_index`), so the next run is served from it too.

A dry run is the same pipeline without the apply: its changes are those the real run
applies. A key that names nobody (`UserNotFound`) or several users (`AmbiguousUser`)
is not a run: nothing is recorded. `read_within`: how long the reads may take (the
HTTP trigger's budget); past it the run stops before applying anything and raises
`ReadsTooSlow` (the caller queues it instead, `shared.app.user_sync`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import time
from collections.abc import Coroutine
from typing import Any

from shared import errors, telemetry
from shared.reconcile import answer, convert, explain, focus, model, planner
from shared.run import indexes, lease, pipeline, served_index, user_view
from shared.run import report as run_report
from shared.run import state as sync_state
from shared.run.context import Deps, Run
from shared.run.steps import (
    calendars,
    change_feed,
    directory,
    event_push,
    guard_window,
    mailboxes,
    photos,
    user_faults,
    write_back,
)
from shared.store import errors as store_errors
from shared.store import protocols

TRIGGER = "on_demand"
MAILBOXES = mailboxes.OneUserStep(lambda run: _focus(run).names)
STEPS = (
    user_view.STEP,  # the view's other users, looked at by the plan
    photos.EVERY_SLOT,
    directory.STEP,
    calendars.STEP,
    write_back.STEP,
    event_push.STEP,
    MAILBOXES,  # the user's calendars and events (R13, R14)
    user_faults.STEP,  # its user's read faults: recorded, or cleared by a read that worked
    guard_window.STEP,  # after every write; moves no delta link
    change_feed.STEP,
)
def _focus(run: Run) -> focus.Focus:
    view = user_view.view_of(run)
    assert view is not None  # put there by _read
    return view.focused


UserNotFound = explain.NotFound
AmbiguousUser = explain.AmbiguousUser


class ReadsTooSlow(Exception):
    """The reads outlasted `read_within` (Graph throttling): nothing was applied."""

    def __init__(self, run_id: str, seconds: float) -> None:
        super().__init__(f"run {run_id}: the reads took more than {seconds:g} s; nothing "
                         "was applied")
        self.run_id = run_id


async def sync_user(deps: Deps, key: str, *, dry_run: bool = False,
                    run_id: str | None = None, queued_at: str | None = None,
                    read_within: float | None = None) -> dict[str, Any]:
    """One user now; returns the run's report, whose `user` is the answer. Raises
    `RunInProgress`, `UserNotFound`, `AmbiguousUser`, `ReadsTooSlow` (nothing recorded
    for the first three; the last leaves a `running` record the caller takes over)."""
    started = deps.clock()
    recorder = pipeline.Recorder(deps.store, run_report.new_report(
        TRIGGER, dry_run, started, run_id=run_id, queued_at=queued_at))
    held: lease.Held | None = None
    try:
        if dry_run:
            await lease.refuse_if_running(deps.store, deps.clock())
        else:
            held = await lease.take(deps.store, recorder.report.run_id, TRIGGER)
    except store_errors.RunInProgress:
        raise
    except Exception as exc:
        report = recorder.report.to_json()
        await pipeline.record_unstarted(report, exc, recorder.clock0, deps.clock, deps.store)
        return report
    try:
        with pipeline.paused_gc():  # 100,000 Emply users are loaded and indexed
            return await _sync(deps, key, recorder, started, held, read_within)
    finally:
        if held is not None:
            await held.release()


async def _sync(deps: Deps, key: str, recorder: pipeline.Recorder, started: dt.datetime,
                held: lease.Held | None, read_within: float | None) -> dict[str, Any]:
    try:
        run = await _bounded(_read(deps, key, recorder, started, applying=held is not None),
                             read_within, recorder.report.run_id)
    except (UserNotFound, AmbiguousUser, ReadsTooSlow):
        raise
    except Exception as exc:
        return await _finish(deps, recorder, exc)
    try:
        await _plan_and_apply(run, recorder, held)
    except Exception as exc:
        return await _finish(deps, recorder, exc)
    return await _finish(deps, recorder, None)


async def _bounded(reading: Coroutine[Any, Any, Run], seconds: float | None,
                   run_id: str) -> Run:
    if seconds is None:
        return await reading
    try:
        return await asyncio.wait_for(reading, seconds)
    except TimeoutError:
        raise ReadsTooSlow(run_id, seconds) from None


async def _read(deps: Deps, key: str, recorder: pipeline.Recorder, started: dt.datetime, *,
                applying: bool) -> Run:
    """Both sides for `key`, and every step's read; the run is recorded `running` once
    the key has named someone."""
    state, warnings = await sync_state.load_state(deps.store)
    loaded, served = await load_emply(deps.store, state)
    if not loaded.doc.get("settings"):
        raise errors.NotConfigured(
            "the integration has no settings: import an Emply state file with a 'settings' "
            "section first (emply-sync emply import FILE)")
    settings = convert.settings(loaded.doc["settings"])
    if settings.enabled:
        view = await user_view.read(deps.graph, loaded.doc, settings, key)
    else:
        view = user_view.refused(key, loaded.doc, settings)
    run = Run(deps=deps, started=started, run_id=recorder.report.run_id,
              trigger=TRIGGER, applying=applying, loaded=loaded, settings=settings,
              state=state, directory=view.directory, warnings=warnings, try_waiting=True)
    run.reads[user_view.STEP.name] = view
    if served is not None:
        run.reads[guard_window.SERVED] = served  # kept current after the writes
    await deps.store.save_run(recorder.report.to_json())
    if view.refusal is None:
        await pipeline.read_all(run, STEPS)
        await recorder.saved_progress("read", entraUsers=len(view.entra_users),
                                      graphRequests=pipeline.read_summary(run).requests)
    return run


async def load_emply(store: protocols.SyncStore, state: sync_state.SyncState
                     ) -> tuple[protocols.LoadedEmply, served_index.ServedIndex | None]:
    """The Emply side: from the index the last run saved while the store's version
    marker still has the value it was saved at (users without `lastChange`/`history`; at
    100,000 users, seconds instead of half a minute), else from the tables. An index that
    cannot be read is no index (the tables are read). With the index it was served
    from, if any (`shared.run.served_index`: the run keeps it current)."""
    index = await indexes.load_emply(store, state)
    if index is not None and index.version is not None \
            and index.version == await store.current_version():
        served = served_index.ServedIndex(index)
        return await store.loaded_from(
            index.version, {kind: served.entries(kind) for kind in indexes.ALL_KINDS}), served
    return await store.load_emply(None, sparse=True), None


async def _plan_and_apply(run: Run, recorder: pipeline.Recorder,
                          held: lease.Held | None) -> None:
    view = user_view.view_of(run)
    assert view is not None  # put there by _read
    entra, emply = pipeline.snapshots(run, STEPS)
    plan = model.Plan(changes=()) if view.refusal is not None else planner.plan(
        entra, emply, run.settings, run.state.planner_state(), run.started, only=view.focused)
    recorder.plan = plan
    report = recorder.report.with_outcome(run_report.Outcome.of(plan),
                                          pipeline.read_summary(run), plan.counts(),
                                          warnings=run.warnings)
    done: list[model.Change] = list(plan.changes)
    applied_errors: tuple[run_report.Json, ...] = ()
    counts = plan.counts()
    if held is not None and view.refusal is None:
        held.check()  # the lease was lost: another run may be applying
        recorder.applying = True
        applied = await pipeline.apply_steps(run, STEPS, plan, recorder)
        done, counts, applied_errors = applied.changes(), applied.counts(), tuple(
            applied.errors())
    elif view.refusal is None:  # a dry run: the user's mailbox previewed too
        preview = await MAILBOXES.preview(run, plan)
        done += preview.added
        applied_errors = tuple(preview.errors)
        counts = dict(counts)
        for change in preview.added:
            counts[change.kind] = counts.get(change.kind, 0) + 1
    asked = answer.Asked(view.key, view.user, tuple(u["id"] for u in view.entra_users),
                         view.refusal)
    recorder.report = dataclasses.replace(
        report, changes=[c.to_json() for c in done], counts=counts,
        errors=(*report.errors, *applied_errors),
        answer=answer.build(asked, entra, emply, run.settings, plan, answer.Done(
            done, applied_errors, dry_run=held is None)))


async def _finish(deps: Deps, recorder: pipeline.Recorder,
                  exc: BaseException | None) -> dict[str, Any]:
    """The run's record, final: saved, logged; a bug is raised after that."""
    if exc is not None:
        recorder.failed(exc)
    recorder.report = dataclasses.replace(
        recorder.report, finished_at=run_report.iso(deps.clock()), progress=None,
        duration_ms=int((time.monotonic() - recorder.clock0) * 1000))
    report = recorder.report.to_json()
    await pipeline.save_report(deps.store, report)
    telemetry.log_run(report)
    if exc is not None and errors.classify(exc) is None:
        raise exc
    return report
