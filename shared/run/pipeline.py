"""One run: lease → load Emply → read Entra → plan (pure) → apply → record.

Both triggers (timer and HTTP) and the CLI call `shared.app.boundary.sync` (which
opens the store and the Graph client, then `run_sync`). A run that cannot read all of Entra fails
before anything is applied, and its delta links do not advance (R7). Every run,
dry or real, failed or not, leaves a report and one telemetry record, including a
run that fails before it starts (storage refusing the lease, a bad app setting).
Failures are named by `shared.errors` (temporary or permanent, with a reason
code); anything else is a bug: recorded, logged with its traceback and raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import gc
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from shared import config, errors, telemetry
from shared import store as store_mod
from shared.graph import client as graph_client
from shared.graph import mailboxes, reader, writer
from shared.reconcile import convert, entity_writes, explain, model, planner
from shared.run import change_feed, conflicts, records, unchanged
from shared.run import disabled as disabled_run
from shared.run.steps import calendars as calendar_step
from shared.run.steps import entra_creates
from shared.run.steps import event_push as event_push_step
from shared.run.steps import events as event_step
from shared.run.steps import photos as photo_step
from shared.store import photo_blobs, protocols

Clock = Callable[[], dt.datetime]

# A crashed run's lease expires after this; a live run renews it every third of it.
LEASE_TTL_SECONDS = protocols.LEASE_TTL_SECONDS

# What the entry points catch, named here so they need not reach into the adapters.
NotConfigured = errors.NotConfigured
RunInProgress = store_mod.RunInProgress
UserNotFound = explain.NotFound
AmbiguousUser = explain.AmbiguousUser
Approval = model.Approval


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclasses.dataclass
class Deps:
    store: protocols.SyncStore
    graph: graph_client.GraphClient
    clock: Clock = utcnow
    schedule: str = config.DEFAULT_SYNC_SCHEDULE
    """The timer's NCRONTAB schedule: R16 spreads the photo checks over its runs."""
    photos: photo_blobs.PhotoBlobs | None = None
    """R16's blobs (`shared.app.boundary` gives the store's `photos` container); None: no
    photo can be copied (a run that would copy one fails before writing its user)."""


@dataclasses.dataclass(frozen=True)
class Prepared:
    """Everything a plan is made from, read once."""

    loaded: protocols.LoadedEmply
    """The Emply side as loaded: the value the writes of `apply_plan` are guarded by."""
    settings: model.Settings
    read: reader.EntraRead
    state: records.SyncState
    snapshot: dict[str, Any] | None = None
    """The bulky part of the previous run's state (see `apply_plan`), when still current."""
    warnings: tuple[dict[str, Any], ...] = ()
    """Problems found while reading that the run recovered from (reported as errors)."""
    calendars: mailboxes.CalendarRead | None = None
    """R13: the calendars of the users whose calendars are synced (calendar sync on)."""
    events: event_step.EventsRead | None = None
    """R14: the events of the mirrored calendars (calendar sync on)."""

    @property
    def doc(self) -> dict[str, Any]:
        return self.loaded.doc


def new_run_id(now: dt.datetime) -> str:
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:8]}"


async def prepare(
    deps: Deps,
    *,
    use_cache: bool = False,
    loaded: tuple[records.SyncState, tuple[dict[str, Any], ...]] | None = None,
    changes: reader.Changes | None = None,
    read_when_disabled: bool = True,
) -> Prepared:
    """Read both sides. With `use_cache` an unchanged Emply side comes from the
    previous run's snapshot (users without `lastChange`/`history`; the store's
    version marker says whether it is still current). `loaded` is the sync state
    when the caller has read it already; `changes` what Graph reported since the
    previous mirror, when the caller has read that (`unchanged.check`). Without
    `read_when_disabled`, a removed integration (R17) reads nothing from Graph."""
    state, warnings = loaded if loaded is not None else await records.load_state(deps.store)
    snapshot, state, more = await _load_snapshot(deps.store, state)
    warnings = (*warnings, *more)
    cache = snapshot.get("emply") if snapshot and use_cache else None
    emply = await deps.store.load_emply(cache, sparse=True)
    doc = emply.doc
    if not doc.get("settings"):
        raise NotConfigured(
            "the integration has no settings: import an Emply state file with a 'settings' "
            "section first (emply-sync emply import FILE)"
        )
    settings = convert.settings(doc["settings"])
    if not settings.enabled and not read_when_disabled:
        return Prepared(loaded=emply, settings=settings, read=disabled_run.not_read(
            settings.tenant_id), state=state, snapshot=snapshot, warnings=warnings)
    read = await reader.read_entra(
        deps.graph, state.previous_mirror(snapshot), tenant_id=settings.tenant_id,
        changes=changes,
    )
    calendars = events = None
    if settings.enabled and settings.calendar_sync:
        calendars = await mailboxes.read_calendars(
            deps.graph, convert.calendar_synced_entra_ids(doc, read.mirror["users"]))
        events = await event_step.read(deps.graph, deps.store, doc, settings, calendars,
                                       deps.clock())
    return Prepared(
        loaded=emply,
        settings=settings,
        read=read,
        state=state,
        snapshot=snapshot,
        warnings=warnings,
        calendars=calendars,
        events=events,
    )


async def _load_snapshot(
    store: protocols.SyncStateStore, state: records.SyncState
) -> tuple[dict[str, Any] | None, records.SyncState, tuple[dict[str, Any], ...]]:
    """The bulky part of the state (snapshot, state, warnings); unreadable, it is
    treated like an unreadable state."""
    try:
        generation = state.snapshot
        if generation is None:
            return None, state, ()
        entra, emply = await asyncio.gather(store.load_snapshot(generation, part="entra"),
                                            store.load_snapshot(generation, part="emply"))
        snapshot = records.unpack_entra(entra) if isinstance(entra, dict) else None
        if snapshot is not None:
            snapshot["emply"] = emply.get("emply") if isinstance(emply, dict) else None
    except (OSError, ValueError, EOFError) as exc:
        return None, records.SyncState(), (records.unreadable_warning(exc),)
    return snapshot, state, ()


def snapshots(prepared: Prepared) -> tuple[model.EntraSnapshot, model.EmplySnapshot]:
    """The planner's view of what was read. Built when needed and not kept: at 100,000
    users they are tens of MB that applying a plan does not need."""
    entra = convert.entra_snapshot(prepared.read.mirror)
    if prepared.calendars is not None:
        entra = dataclasses.replace(
            entra, mailboxes=convert.mailboxes(prepared.calendars.mailboxes))
    return entra, convert.emply_snapshot(prepared.doc)


def make_plan(
    prepared: Prepared, now: dt.datetime, approve: model.Approval | None = None,
    approve_deletions: model.Approval | None = None,
) -> model.Plan:
    entra, emply = snapshots(prepared)
    plan = planner.plan(
        entra,
        emply,
        prepared.settings,
        prepared.state.planner_state(),
        now,
        approve_deactivations=approve,
        approve_deletions=approve_deletions,
    )
    if prepared.events is None:
        return plan
    return event_step.with_events(plan, prepared.events, prepared.doc, emply)


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
    run = _Run(records.RunReport(run_id=run_id or new_run_id(started), trigger=trigger,
                                 dry_run=dry_run, started_at=iso(started),
                                 queued_at=queued_at), time.monotonic())
    run_id = run.report.run_id
    heartbeat: asyncio.Task[None] | None = None
    taken: dict[str, Any] | None = None
    try:
        if dry_run:
            await _refuse_if_running(deps)  # R1: a request during a run gets 409, dry or not
        else:
            taken = await deps.store.acquire_lease(run_id, trigger,
                                                   ttl_seconds=LEASE_TTL_SECONDS)
            heartbeat = asyncio.create_task(_keep_lease(deps.store, run_id))
    except store_mod.RunInProgress:
        raise  # not a run: the caller answers 409 / exit 3
    except Exception as exc:
        # Failed before it started (e.g. storage refusing the lease): still one record.
        report = run.report.to_json()
        await record_unstarted(report, exc, run.clock0, deps.clock, deps.store)
        return report
    if not dry_run:
        try:
            if taken is not None:
                await _mark_abandoned(deps.store, taken, run_id)
            await _mark_dead_dry_runs(deps.store, run_id, started)
        except Exception:  # other runs' records: this run goes on without them
            telemetry.log.warning("emply_sync.run_abandoned_not_marked",
                                  extra={"runId": run_id}, exc_info=True)
    try:
        with _paused_gc():
            await _run(deps, run, started, heartbeat, approve_deactivations,
                       approve_deletions)
    finally:
        if heartbeat is not None:
            await _stop_heartbeat(deps.store, heartbeat, run.report.run_id)
        telemetry.log_run(run.report.to_json())
    return run.report.to_json()


@dataclasses.dataclass
class _Run:
    """A run under way: its report so far (a frozen record, replaced step by step)."""

    report: records.RunReport
    clock0: float
    """`time.monotonic()` at the start."""


async def _run(
    deps: Deps,
    run: _Run,
    started: dt.datetime,
    heartbeat: asyncio.Task[None] | None,
    approve_deactivations: model.Approval | None,
    approve_deletions: model.Approval | None = None,
) -> None:
    """Fill `run.report` in; a run failure is recorded in it, a bug is recorded and raised.

    Its steps: the state; what changed (`unchanged.check`), and when nothing did, the
    last run's residual is the outcome; else read, plan, apply. The bulky values (what
    was read, the planner's snapshots, the entities written) live only as long as they
    are needed, and the report's list of changes is made last, once they are gone: that
    keeps a 100,000-user run's peak memory down.
    """
    applying = False
    plan: model.Plan | None = None
    not_written: frozenset[int] = frozenset()
    links: tuple[model.Change, ...] = ()
    try:
        await deps.store.save_run(run.report.to_json())
        state, warnings = await records.load_state(deps.store)
        check = await unchanged.check(deps.store, deps.graph, state, started=started,
                                      approve=approve_deactivations or approve_deletions)
        if check.residual is not None and check.round is not None:
            run.report = unchanged.reused_report(run.report, check.residual, check.round,
                                                 warnings)
            _progress(run, "unchanged", reusedPlanOf=check.residual.run_id)
            if heartbeat is not None:
                if heartbeat.done():
                    heartbeat.result()
                await records.save_state(deps.store, state.after_unchanged(
                    check.round.delta_links, run.report.run_id))
            return
        prepared = await prepare(deps, use_cache=True, loaded=(state, warnings),
                                 changes=check.changes, read_when_disabled=False)
        _progress(run, "read", entraUsers=len(prepared.read.mirror["users"]),
                  entraGroups=len(prepared.read.mirror["groups"]),
                  emplyUsers=len(prepared.doc.get("users", ())),
                  calendarUsers=len(prepared.calendars.mailboxes) if prepared.calendars else 0,
                  fullRead=prepared.read.full_read)
        await _save_progress(deps.store, run)
        plan = make_plan(prepared, started, approve_deactivations, approve_deletions)
        photos_read = await check_photos(deps, prepared, plan, started)
        if photos_read is not None:
            plan = photo_step.plan_with_photos(plan, photos_read, started)
            _progress(run, "photos", **photos_read.summary())
        _progress(run, "planned", changes=len(plan.changes), held=len(plan.held))
        await _save_progress(deps.store, run)
        run.report = run.report.with_outcome(
            records.Outcome.of(plan),
            entra_read_summary(prepared.read, prepared.calendars, photos_read,
                               prepared.events),
            plan.counts(),
            warnings=prepared.warnings)
        if approve_deactivations is not None and not any(
            c.kind == model.DEACTIVATE_USER for c in (*plan.held, *plan.changes)
        ):  # held Entra deletions (R9) are not what this approval is for
            run.report = run.report.with_error({
                "reason": "approval_unused",
                "message": f"--approve-deactivations {approve_deactivations} was given but "
                "this run holds no deactivations; nothing was approved",
            })
        if heartbeat is not None:
            if heartbeat.done():  # the lease was lost: another run may be applying
                heartbeat.result()
            applying = True
            skipped = conflicts.Skipped()
            if prepared.settings.enabled:
                skipped = await apply_plan(deps, prepared, plan, run.report.run_id, started,
                                           photos_read)
            else:  # R17: the integration is removed
                await disabled_run.apply_disabled(deps.store, prepared.loaded, prepared.state,
                                                  plan, run.report.run_id, iso(started))
            _progress(run, "applied", **({"concurrentChanges": len(skipped.users)
                                          + len(skipped.employees)} if skipped else {}))
            dropped = conflicts.left_out(plan, skipped)
            run.report = conflicts.reported(run.report, dropped, skipped)
            run.report, not_written, links = await _write_back(
                deps, run, plan, prepared.settings, iso(started),
                frozenset(id(c) for c in dropped))
            run.report, not_pushed = await event_push_step.push_planned(  # R15, after
                deps.store, deps.graph, plan, run.report, prepared.loaded)  # the Emply writes
            not_written |= not_pushed
        del prepared  # with it the loaded Emply copy (about 100 MB at 100,000 users)
        run.report = dataclasses.replace(run.report, changes=[
            *(c.to_json() for c in plan.changes if id(c) not in not_written),
            *(c.to_json() for c in links)])
        if heartbeat is not None:  # a real run: its applied changes go in the feed
            run.report = await change_feed.record_report(deps.store, run.report, deps.clock())
    except Exception as exc:  # recorded; re-raised when it is a bug, not a run failure
        error = failure(exc)
        if error["reason"] == errors.BUG_REASON:
            telemetry.log.exception("emply_sync.bug", extra={
                "runId": run.report.run_id, "trigger": run.report.trigger})
        if applying:
            error["message"] += (
                " (while applying: some changes may be applied; delta links did not "
                "advance and the next run plans again from the current state)"
            )
        run.report = run.report.failed(
            error, [c.to_json() for c in plan.changes] if plan is not None else [])
        if errors.classify(exc) is None:
            raise
    finally:
        run.report = dataclasses.replace(
            run.report, finished_at=iso(deps.clock()), progress=None,
            duration_ms=int((time.monotonic() - run.clock0) * 1000))
        await _save_report(deps.store, run.report.to_json())


async def _write_back(
    deps: Deps, run: _Run, plan: model.Plan, settings: model.Settings, at: str,
    dropped: frozenset[int] = frozenset()
) -> tuple[records.RunReport, frozenset[int], tuple[model.Change, ...]]:
    """R9: the plan's Entra writes, after the Emply ones (an Entra write never changes
    Emply, R5, except the link of a user created in Entra: `shared.run.steps.entra_creates`).
    What was not written is reported per user (or once, for a missing permission) and
    left out of the changes and counts; the next run plans it again. Returns the report,
    the ids of the changes not written, and the links made for created users.
    `dropped`: the changes left out already (`shared.run.conflicts`, counted there): not
    written, and among those returned as not written."""
    planned = [c for c in plan.changes if c.kind in model.ENTRA_KINDS
               and c.kind != model.ENTRA_CREATE and id(c) not in dropped]
    creates = [c for c in plan.changes if c.kind == model.ENTRA_CREATE
               and id(c) not in dropped]
    if not planned and not creates:
        return run.report, dropped, ()
    result = await writer.write_changes(deps.graph, planned)
    created = await entra_creates.create_and_link(
        deps.store, deps.graph, creates, settings, run.report.run_id, at) if creates else None
    failed = (*result.failed, *(created.result.failed if created else ()))
    links = created.links if created else ()
    _progress(run, "written_back", written=len(result.written), notWritten=len(failed),
              createdInEntra=len(links), batches=result.batches + (
                  created.result.batches if created else 0))
    counts = dict(run.report.counts)
    for change in failed:
        counts[change.kind] -= 1
        if not counts[change.kind]:
            del counts[change.kind]
    if links:
        counts[model.LINK_USER] = counts.get(model.LINK_USER, 0) + len(links)
    report = dataclasses.replace(run.report, counts=counts, errors=(
        *run.report.errors, *result.errors, *(created.result.errors if created else ())))
    return report, dropped | frozenset(id(c) for c in failed), links


@contextlib.contextmanager
def _paused_gc() -> Iterator[None]:
    """Only young-generation collections during a run.

    A run creates hundreds of thousands of long-lived objects at once (the Entra mirror,
    the Emply side, the plan); the collector's older generations would rescan them again
    and again (measured at 100,000 users: 40% of planning and 60% of converting time).
    Switching the collector off altogether kept every cyclic piece of garbage instead:
    each HTTP response is one (httpx and azure-core link a response and its stream), so a
    100,000-user read held its 100 Graph pages, 45 MB, until the run ended. Young
    collections look only at objects allocated since the previous one, so they free
    such cycles for little time; what survives moves on and is not scanned again.
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


def _progress(run: _Run, phase: str, **counts: Any) -> None:
    """One log record per phase, so a long run shows where it is (ids and counts only);
    the counts also go in the report, which `_save_progress` shows while it runs."""
    run.report = dataclasses.replace(run.report, progress={"phase": phase, **counts})
    telemetry.log.info(
        "emply_sync.phase",
        extra={"runId": run.report.run_id, "trigger": run.report.trigger, "phase": phase,
               "elapsedMs": int((time.monotonic() - run.clock0) * 1000), **counts},
    )


async def _refuse_if_running(deps: Deps) -> None:
    lease = await deps.store.current_lease()
    if lease is None:
        return
    expires = lease.get("expiresAt")
    if isinstance(expires, str) and dt.datetime.fromisoformat(
        expires.replace("Z", "+00:00")
    ) > deps.clock():
        raise store_mod.RunInProgress(
            str(lease.get("runId")), str(lease.get("trigger")), str(lease.get("startedAt"))
        )


async def _save_progress(store: protocols.RunLog, run: _Run) -> None:
    """The running record with its progress, for GET /api/sync/runs/{runId}. Only
    informative: a failed write is logged and the run goes on."""
    try:
        await store.save_run(run.report.to_json())
    except Exception:
        telemetry.log.warning("emply_sync.progress_not_saved",
                              extra={"runId": run.report.run_id}, exc_info=True)


async def _save_report(store: protocols.RunLog, report: dict[str, Any]) -> None:
    try:
        await store.save_run(report)
    except Exception:  # the run's outcome stands; losing its record is logged, not raised
        telemetry.log.exception("emply_sync.report_not_saved", extra={"runId": report["runId"]})


async def _stop_heartbeat(
    store: protocols.RunLease, heartbeat: asyncio.Task[None], run_id: str
) -> None:
    heartbeat.cancel()
    with contextlib.suppress(BaseException):
        await heartbeat
    try:
        await store.release_lease(run_id)
    except Exception:  # it expires by itself after LEASE_TTL_SECONDS
        telemetry.log.exception("emply_sync.lease_not_released", extra={"runId": run_id})


async def _keep_lease(store: protocols.RunLease, run_id: str) -> None:
    """Renew the lease while the run works. A failed renewal is retried at the next beat
    (the lease outlives two missed beats); only `LeaseLost` (another run took it) ends it."""
    while True:
        await asyncio.sleep(LEASE_TTL_SECONDS / 3)
        try:
            await store.renew_lease(run_id, ttl_seconds=LEASE_TTL_SECONDS)
        except store_mod.LeaseLost:
            raise
        except Exception:
            telemetry.log.warning("emply_sync.lease_renewal_failed", extra={"runId": run_id})


def entra_read_summary(read: reader.EntraRead, calendars: mailboxes.CalendarRead | None = None,
                       photos: photo_step.PhotoCheck | None = None,
                       events: event_step.EventsRead | None = None
                       ) -> records.EntraReadSummary:
    """Graph's requests and 429s of the whole read: the directory, the calendars and
    their events, and the photos."""
    more, throttled = (calendars.requests, calendars.throttled) if calendars else (0, 0)
    if photos is not None:
        more, throttled = more + photos.read.requests, throttled + photos.read.throttled
    if events is not None:
        more, throttled = more + events.read.requests, throttled + events.read.throttled
    return records.EntraReadSummary(full_read=read.full_read, reason=read.full_read_reason,
                                    requests=read.requests + more,
                                    throttled=read.throttled + throttled)


async def check_photos(deps: Deps, prepared: Prepared, plan: model.Plan, now: dt.datetime,
                       *, only: str | None = None) -> photo_step.PhotoCheck | None:
    """R16: the photos this run checks, read from Graph; None with photo sync off or the
    integration disabled (nothing more is copied)."""
    if not (prepared.settings.enabled and prepared.settings.photo_sync):
        return None
    return await photo_step.check(deps.graph, prepared.doc.get("users", ()),
                                  prepared.read.mirror["users"], plan, now,
                                  schedule=deps.schedule, only=only)


async def apply_plan(
    deps: Deps, prepared: Prepared, plan: model.Plan, run_id: str, started: dt.datetime,
    photos_read: photo_step.PhotoCheck | None = None,
) -> conflicts.Skipped:
    """Write the plan's Emply side and the state; returns the entities not written
    because Emply changed them meanwhile (`shared.run.conflicts`). R16's photo blobs are
    written first: a user whose write is skipped keeps its old `photo` field, and a
    later run copies the photo again."""
    at = iso(started)
    store = deps.store
    loaded = prepared.loaded
    users = {u["id"]: u for u in prepared.doc.get("users", ())}
    employees = {e["id"]: e for e in prepared.doc.get("employees", ())}
    if loaded.served_from_cache:
        # The cached copy has no lastChange/history: rewrite whole entities only.
        touched = {c.user_id for c in plan.changes if c.employee_id is None and c.user_id}
        touched.update(b.user_id for b in plan.bookkeeping)
        users.update(await store.read_entities("users", (i for i in touched if i in users),
                                               loaded=loaded))
    writes = entity_writes.PlannedWrites(users, employees, plan, run_id, at)
    # The bulky part of the state (Entra users and groups, the Emply copy) goes in a
    # snapshot, written under a new generation only when something changed. Its Entra
    # part is packed and written while the Emply writes are under way (Azurite and
    # Table Storage do the work then, our process waits); its Emply part after them.
    # Only after both does the state name it, so the next run reads Entra from here
    # on only once Emply is written (R7).
    mirror = prepared.read.mirror
    previous = prepared.snapshot
    old_generation = prepared.state.snapshot
    same_snapshot = (
        previous is not None
        and old_generation is not None
        and loaded.served_from_cache
        and not writes.user_ids
        and not writes.employee_ids
        and not calendar_step.touches_calendars(plan)
        and all(mirror[k] is previous.get(k) for k in ("users", "groups"))
    )
    generation = old_generation if same_snapshot and old_generation else uuid.uuid4().hex
    entra_saved = None if same_snapshot else asyncio.ensure_future(
        store.save_snapshot(generation, lambda: records.pack_entra(mirror), part="entra"))
    try:
        # R16: a photo's blob is written (or deleted) before the user's `photo` field.
        await photo_step.apply_blobs(deps.photos, plan, photos_read)
        skipped = conflicts.Skipped(
            frozenset(await store.write_built("users", writes.user_ids, writes.user,
                                              loaded=loaded, skip_conflicts=True)),
            frozenset(await store.write_built("employees", writes.employee_ids,
                                              writes.employee, loaded=loaded,
                                              skip_conflicts=True)))
        await calendar_step.apply_calendars(store, loaded, plan)
        if prepared.events is not None:
            await event_step.apply(store, loaded, plan, prepared.events)
        if entra_saved is not None:
            await store.save_snapshot(generation, {"emply": loaded.cache()}, part="emply")
            await entra_saved
    except BaseException:
        if entra_saved is not None:
            entra_saved.cancel()
            await asyncio.gather(entra_saved, return_exceptions=True)
            with contextlib.suppress(Exception):
                await store.delete_snapshot(generation)
        raise
    # A plan with Entra writes is never reused: a write that fails must be planned again,
    # and Graph's delta would not show it (R9). Nor one with skipped entities: their users
    # must be planned again from what Emply wrote.
    residual = None if skipped or any(c.kind in model.ENTRA_KINDS for c in plan.changes) else (
        records.residual(
            plan, run_id=run_id, started=started, tenant_id=prepared.settings.tenant_id,
            emply_version=loaded.version(), organization=mirror["organization"],
            # Calendars and photos are not in delta: such a run is never reused.
            calendar_sync=prepared.calendars is not None or photos_read is not None))
    await records.save_state(store, records.after_run(
        mirror, generation=generation, plan=plan, run_id=run_id, residual=residual))
    if not same_snapshot and old_generation is not None:
        with contextlib.suppress(Exception):  # a leftover blob costs storage, not correctness
            await store.delete_snapshot(old_generation)
    return skipped


def failure(exc: BaseException) -> dict[str, Any]:
    """The report's error entry for what ended a run (`shared.errors`' reason codes)."""
    classified = errors.classify(exc)
    if classified is None:
        return {"reason": errors.BUG_REASON, "temporary": False,
                "message": f"a bug in the sync ({type(exc).__name__}: {exc}); see the logs"}
    return classified.to_json()


DRY_RUN_GIVEN_UP_AFTER = dt.timedelta(hours=1)
"""A dry run takes no lease, so nothing shows it was killed but its age: one still
`running` after this (twice host.json's functionTimeout) is dead."""


async def _mark_dead_dry_runs(store: protocols.RunLog, run_id: str,
                              now: dt.datetime) -> None:
    """Dry runs among the recent ones still `running` long after any run could last were
    killed: mark them `abandoned` too, so history and health do not show them running."""
    for summary in await store.list_runs(50):
        started = summary.get("startedAt")
        if (summary.get("status") == "running" and summary.get("dryRun")
                and isinstance(started, str)
                and dt.datetime.fromisoformat(started.replace("Z", "+00:00"))
                < now - DRY_RUN_GIVEN_UP_AFTER):
            await _abandon(store, str(summary.get("runId")), started, run_id)


async def _mark_abandoned(store: protocols.RunLog, taken: Mapping[str, Any],
                          run_id: str) -> None:
    """The run whose expired lease this run took was killed (a host restart, a timeout)
    and left its record `running`: mark it `abandoned` with the time it was last seen."""
    old_id = taken.get("runId")
    if not isinstance(old_id, str) or not old_id:
        return
    await _abandon(store, old_id, taken.get("renewedAt") or taken.get("startedAt"), run_id)


async def _abandon(store: protocols.RunLog, old_id: str, last_seen: Any,
                   run_id: str) -> None:
    old = await store.get_run(old_id)
    if old is None or old.get("status") != "running":
        return  # it finished and only its lease release was lost
    old.update({
        "status": "abandoned",
        "lastSeenAt": last_seen,
        "finishedAt": None,
        "abandonedBy": run_id,
    })
    old["errors"] = [*(old.get("errors") or ()), {
        "reason": "run_abandoned", "temporary": True,
        "message": f"the run stopped without finishing (last seen {last_seen}); run "
        f"{run_id} took its expired lease. Nothing it planned after that is known to "
        "be applied; the next run plans again from the current state",
    }]
    await store.save_run(old)
    telemetry.log.warning("emply_sync.run_abandoned",
                          extra={"runId": old_id, "lastSeenAt": last_seen,
                                 "abandonedBy": run_id})


async def record_unstarted(report: dict[str, Any], exc: BaseException, clock0: float,
                           clock: Clock, store: protocols.RunLog | None) -> None:
    """Fill in and record a run that failed before it started: its report (when storage
    takes it) and its telemetry record (always, so the failed-run alert fires). A bug
    is logged with its traceback and raised after that."""
    error = failure(exc)
    report.update({"status": "failed", "failedBeforeStart": True,
                   "errors": [*report.get("errors", ()), error],
                   "finishedAt": iso(clock()),
                   "durationMs": int((time.monotonic() - clock0) * 1000)})
    if error["reason"] == errors.BUG_REASON:
        telemetry.log.error("emply_sync.bug", exc_info=exc, extra={
            "runId": report["runId"], "trigger": report["trigger"]})
    if store is not None:
        await _save_report(store, report)
    telemetry.log_run(report)
    if errors.classify(exc) is None:
        raise exc


def new_report(trigger: str, dry_run: bool, started: dt.datetime, *,
               run_id: str | None = None, queued_at: str | None = None) -> dict[str, Any]:
    """A run's report before it starts (for a run that may fail before `run_sync`)."""
    return records.RunReport(run_id=run_id or new_run_id(started), trigger=trigger,
                             dry_run=dry_run, started_at=iso(started),
                             queued_at=queued_at).to_json()


async def explain_user(deps: Deps, key: str) -> dict[str, Any]:
    """R18 for a user id, username or e-mail (or an employee's e-mail). Changes nothing."""
    with _paused_gc():
        return await _explain(deps, key)


async def _explain(deps: Deps, key: str) -> dict[str, Any]:
    prepared = await prepare(deps)
    now = deps.clock()
    plan = make_plan(prepared, now)
    entra, emply = snapshots(prepared)
    user_docs = {u["id"]: u for u in prepared.doc.get("users", ())}
    doc = explain.find_user(key, user_docs, emply.employees)
    seen = None
    if doc is not None:
        found = await check_photos(deps, prepared, plan, now, only=str(doc["id"]))
        if found is not None:
            plan = photo_step.plan_with_photos(plan, found, now)
            seen = found.seen()
    result = explain.explain(key, entra, emply, user_docs, prepared.settings, plan, now)
    if doc is None or result.get("user", {}).get("id") != doc["id"]:
        return result
    return photo_step.explained(result, doc, prepared.settings, seen)
