"""One run: lease → load Emply → read Entra → plan (pure) → apply → record.

Both triggers (timer and HTTP) and the CLI call `shared.boundary.sync` (which
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

from shared import errors, telemetry, unchanged
from shared import store as store_mod
from shared.graph import client as graph_client
from shared.graph import reader
from shared.reconcile import apply, convert, explain, model, planner
from shared.store import columns
from shared.store import store as store_impl

Clock = Callable[[], dt.datetime]

# A crashed run's lease expires after this; a live run renews it every third of it.
LEASE_TTL_SECONDS = store_impl.LEASE_TTL_SECONDS

# What the entry points catch, named here so they need not reach into the adapters.
NotConfigured = errors.NotConfigured
RunInProgress = store_mod.RunInProgress
UserNotFound = explain.NotFound
AmbiguousUser = explain.AmbiguousUser


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclasses.dataclass
class Deps:
    store: store_mod.EmplyStore
    graph: graph_client.GraphClient
    clock: Clock = utcnow


@dataclasses.dataclass(frozen=True)
class Prepared:
    """Everything a plan is made from, read once."""

    doc: dict[str, Any]
    settings: model.Settings
    read: reader.EntraRead
    state: dict[str, Any]
    snapshot: dict[str, Any] | None = None
    """The bulky part of the previous run's state (see `apply_plan`), when still current."""
    warnings: tuple[dict[str, Any], ...] = ()
    """Problems found while reading that the run recovered from (reported as errors)."""


def new_run_id(now: dt.datetime) -> str:
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:8]}"


async def prepare(
    deps: Deps,
    *,
    use_cache: bool = False,
    loaded: tuple[dict[str, Any], tuple[dict[str, Any], ...]] | None = None,
    changes: reader.DeltaRound | None = None,
) -> Prepared:
    """Read both sides. With `use_cache` an unchanged Emply side comes from the
    previous run's snapshot (users without `lastChange`/`history`; the store's
    version marker says whether it is still current). `loaded` is the sync state
    when the caller has read it already; `changes` Entra's delta round when it has
    read that (`unchanged.check`)."""
    state, warnings = loaded if loaded is not None else await _load_state(deps.store)
    snapshot, state, more = await _load_snapshot(deps.store, state)
    warnings = (*warnings, *more)
    cache = snapshot.get("emply") if snapshot and use_cache else None
    doc = await deps.store.load_document(cache=cache, sparse=True)
    if not doc.get("settings"):
        raise NotConfigured(
            "the integration has no settings: import an Emply state file with a 'settings' "
            "section first (emply-sync emply import FILE)"
        )
    settings = convert.settings(doc["settings"])
    read = await reader.read_entra(
        deps.graph, previous_mirror(state, snapshot), tenant_id=settings.tenant_id,
        changes=changes,
    )
    return Prepared(
        doc=doc,
        settings=settings,
        read=read,
        state=state,
        snapshot=snapshot,
        warnings=warnings,
    )


def _unreadable(exc: BaseException) -> tuple[dict[str, Any], ...]:
    return ({
        "reason": "sync_state_unreadable",
        "message": f"the sync's stored state could not be read ({type(exc).__name__}: "
        f"{exc}); Entra is read in full and the state rewritten. Role mapping changes "
        "made since the last run are not migrated (R11 step 2) this once",
    },)


async def _load_state(
    store: store_mod.EmplyStore,
) -> tuple[dict[str, Any], tuple[dict[str, Any], ...]]:
    """The sync's own (small) state; unreadable state means a full re-read, reported,
    not a crash. A full re-read is always safe (R7: it deactivates only who is really
    gone); what is lost with the state is the previous role mapping, so the report says
    so."""
    try:
        state = await store.load_sync_state()
        if state is not None and not isinstance(state, dict):
            raise ValueError(f"expected a JSON object, got {type(state).__name__}")
    except (OSError, ValueError, EOFError) as exc:  # gzip, JSON and shape errors
        return {}, _unreadable(exc)
    return state or {}, ()


async def _load_snapshot(
    store: store_mod.EmplyStore, state: dict[str, Any]
) -> tuple[dict[str, Any] | None, dict[str, Any], tuple[dict[str, Any], ...]]:
    """The bulky part of the state (snapshot, state, warnings); unreadable, it is
    treated like an unreadable state."""
    try:
        generation = state.get("snapshot")
        if not isinstance(generation, str):
            return None, state, ()
        entra, emply = await asyncio.gather(store.load_snapshot(generation, part="entra"),
                                            store.load_snapshot(generation, part="emply"))
        snapshot = _unpack_snapshot(entra) if isinstance(entra, dict) else None
        if snapshot is not None:
            snapshot["emply"] = emply.get("emply") if isinstance(emply, dict) else None
    except (OSError, ValueError, EOFError) as exc:
        return None, {}, _unreadable(exc)
    return snapshot, state, ()


_BULK = ("users", "groups")
SNAPSHOT_FORMAT = 2
"""2: Entra users in columns (`shared.store.columns`); 1 (no "format"): as in the mirror."""


def _pack_entra(mirror: Mapping[str, Any]) -> dict[str, Any]:
    """The snapshot's Entra part: the mirror's users (in columns) and groups."""
    return {
        "format": SNAPSHOT_FORMAT,
        "users": columns.pack_rows(list(mirror["users"].values()), reader.USER_FIELDS),
        "groups": mirror["groups"],
    }


def _unpack_snapshot(snapshot: dict[str, Any]) -> dict[str, Any] | None:
    """The snapshot's Entra part with its users as the mirror holds them; None for an
    older format (Entra is then read in full once). Raises ValueError when malformed."""
    if snapshot.get("format") != SNAPSHOT_FORMAT:
        return None
    rows = columns.unpack_rows(snapshot.get("users"), reader.USER_FIELDS,
                                         "snapshot users")
    users = {row[0]: row for row in rows}
    groups = snapshot.get("groups")
    if not isinstance(groups, dict) or not all(
        isinstance(g, dict) and isinstance(g.get("members"), list) for g in groups.values()
    ):
        raise ValueError("snapshot groups: expected {id: {..., \"members\": [...]}}")
    # Members as the very id strings of the users (one copy of each id, not two).
    same = {user_id: user_id for user_id in users}
    for group in groups.values():
        group["members"] = [same.get(m, m) for m in group["members"]]
    return {**snapshot, "users": users, "groups": groups}


def previous_mirror(
    state: Mapping[str, Any], snapshot: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """The Entra mirror of the previous run: its head (delta links, organization) from
    the state, its users and groups from the snapshot of the same generation."""
    if isinstance(state.get("mirror"), dict):  # a state written before the snapshot existed
        mirror: dict[str, Any] = state["mirror"]
        return mirror
    head = state.get("mirrorHead")
    if not isinstance(head, dict) or snapshot is None:
        return None
    return {**head, **{k: snapshot.get(k) for k in _BULK}}


def snapshots(prepared: Prepared) -> tuple[model.EntraSnapshot, model.EmplySnapshot]:
    """The planner's view of what was read. Built when needed and not kept: at 100,000
    users they are tens of MB that applying a plan does not need."""
    return convert.entra_snapshot(prepared.read.mirror), convert.emply_snapshot(prepared.doc)


def make_plan(
    prepared: Prepared, now: dt.datetime, approve: int | None = None
) -> model.Plan:
    entra, emply = snapshots(prepared)
    return planner.plan(
        entra,
        emply,
        prepared.settings,
        convert.sync_state(prepared.state),
        now,
        approve_deactivations=approve,
    )


async def run_sync(
    deps: Deps,
    *,
    trigger: str,
    dry_run: bool = False,
    approve_deactivations: int | None = None,
) -> dict[str, Any]:
    """One run; returns its report. Raises `RunInProgress` when another run holds the lease."""
    started = deps.clock()
    clock0 = time.monotonic()
    report = new_report(trigger, dry_run, started)
    run_id = report["runId"]
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
        await record_unstarted(report, exc, clock0, deps.clock, deps.store)
        return report
    if not dry_run and taken is not None:
        try:
            await _mark_abandoned(deps.store, taken, run_id)
        except Exception:  # another run's record: this run goes on without it
            telemetry.log.warning("emply_sync.run_abandoned_not_marked",
                                  extra={"runId": taken.get("runId")}, exc_info=True)
    try:
        with _paused_gc():
            await _run(deps, report, clock0, started, heartbeat, approve_deactivations)
    finally:
        if heartbeat is not None:
            await _stop_heartbeat(deps.store, heartbeat, run_id)
        telemetry.log_run(report)
    return report


async def _run(
    deps: Deps,
    report: dict[str, Any],
    clock0: float,
    started: dt.datetime,
    heartbeat: asyncio.Task[None] | None,
    approve_deactivations: int | None,
) -> None:
    """Fill `report` in; a run failure is recorded in it, a bug is recorded and raised.

    The bulky values (what was read, the planner's snapshots, the entities written)
    live only as long as they are needed, and the report's list of changes is made
    last, once they are gone: that keeps a 100,000-user run's peak memory down.
    """
    applying = False
    plan: model.Plan | None = None
    try:
        await deps.store.save_run(report)
        state, warnings = await _load_state(deps.store)
        check = await unchanged.check(deps.store, deps.graph, state, started=started,
                                      approve=approve_deactivations)
        if check.residual is not None and check.changes is not None:
            _reuse(report, check.residual, check.changes, warnings)
            _progress(report, "unchanged", clock0, reusedPlanOf=check.residual.get("runId"))
            if heartbeat is not None:
                if heartbeat.done():
                    heartbeat.result()
                await deps.store.save_sync_state(
                    unchanged.next_state(state, check.changes, report["runId"]))
            return
        prepared = await prepare(deps, use_cache=True, loaded=(state, warnings),
                                 changes=check.changes)
        _progress(report, "read", clock0, entraUsers=len(prepared.read.mirror["users"]),
                  entraGroups=len(prepared.read.mirror["groups"]),
                  emplyUsers=len(prepared.doc.get("users", ())),
                  fullRead=prepared.read.full_read)
        plan = make_plan(prepared, started, approve_deactivations)
        _progress(report, "planned", clock0, changes=len(plan.changes), held=len(plan.held))
        report.update(plan_summary(plan, prepared.read))
        report["errors"] = [*prepared.warnings, *report["errors"]]
        if approve_deactivations is not None and not plan.held and not any(
            c.kind == model.DEACTIVATE_USER for c in plan.changes
        ):
            report["errors"].append({
                "reason": "approval_unused",
                "message": f"--approve-deactivations {approve_deactivations} was given but "
                "this run holds no deactivations; nothing was approved",
            })
        if heartbeat is not None:
            if heartbeat.done():  # the lease was lost: another run may be applying
                heartbeat.result()
            applying = True
            await apply_plan(deps, prepared, plan, report["runId"], started)
            _progress(report, "applied", clock0)
        del prepared
        deps.store.forget_loaded()
        report["changes"] = [c.to_json() for c in plan.changes]
    except Exception as exc:  # recorded; re-raised when it is a bug, not a run failure
        report["status"] = "failed"
        error = failure(exc)
        if error["reason"] == errors.BUG_REASON:
            telemetry.log.exception("emply_sync.bug", extra={
                "runId": report["runId"], "trigger": report["trigger"]})
        if applying:
            error["message"] += (
                " (while applying: some changes may be applied; delta links did not "
                "advance and the next run plans again from the current state)"
            )
        # What was planned is kept for the operator, but not reported as done.
        deps.store.forget_loaded()
        report["planned"] = [c.to_json() for c in plan.changes] if plan is not None else []
        report["changes"], report["counts"] = [], {}
        report["errors"] = [*report.get("errors", []), error]
        if errors.classify(exc) is None:
            raise
    finally:
        report["finishedAt"] = iso(deps.clock())
        report["durationMs"] = int((time.monotonic() - clock0) * 1000)
        await _save_report(deps.store, report)


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


def _progress(report: Mapping[str, Any], phase: str, clock0: float, **counts: Any) -> None:
    """One log record per phase, so a long run shows where it is (ids and counts only)."""
    telemetry.log.info(
        "emply_sync.phase",
        extra={"runId": report["runId"], "trigger": report["trigger"], "phase": phase,
               "elapsedMs": int((time.monotonic() - clock0) * 1000), **counts},
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


async def _save_report(store: store_mod.EmplyStore, report: dict[str, Any]) -> None:
    try:
        await store.save_run(report)
    except Exception:  # the run's outcome stands; losing its record is logged, not raised
        telemetry.log.exception("emply_sync.report_not_saved", extra={"runId": report["runId"]})


async def _stop_heartbeat(
    store: store_mod.EmplyStore, heartbeat: asyncio.Task[None], run_id: str
) -> None:
    heartbeat.cancel()
    with contextlib.suppress(BaseException):
        await heartbeat
    try:
        await store.release_lease(run_id)
    except Exception:  # it expires by itself after LEASE_TTL_SECONDS
        telemetry.log.exception("emply_sync.lease_not_released", extra={"runId": run_id})


async def _keep_lease(store: store_mod.EmplyStore, run_id: str) -> None:
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


def _reuse(report: dict[str, Any], residual: Mapping[str, Any], changes: reader.DeltaRound,
           warnings: tuple[dict[str, Any], ...]) -> None:
    """Fill the report of a run whose outcome is the last run's residual (`unchanged`)."""
    report.update({
        "status": residual.get("status", "succeeded"),
        "counts": {},
        "changes": [],
        "held": list(residual.get("held") or ()),
        "errors": [*warnings, *(residual.get("errors") or ())],
        "skips": dict(residual.get("skips") or {}),
        "reusedPlanOf": residual.get("runId"),
        "entraRead": {"fullRead": False, "reason": None, "requests": changes.requests,
                      "throttled": changes.throttled},
    })


def plan_summary(plan: model.Plan, read: reader.EntraRead) -> dict[str, Any]:
    """The report's fields for a plan, but its list of changes."""
    return {
        "status": plan.status,
        "counts": plan.counts(),
        "held": [c.to_json() for c in plan.held],
        "errors": [p.to_json() for p in plan.errors],
        "skips": dict(plan.skips),
        "entraRead": {
            "fullRead": read.full_read,
            "reason": read.full_read_reason,
            "requests": read.requests,
            "throttled": read.throttled,
        },
    }


async def apply_plan(
    deps: Deps, prepared: Prepared, plan: model.Plan, run_id: str, started: dt.datetime
) -> None:
    at = iso(started)
    store = deps.store
    users = {u["id"]: u for u in prepared.doc.get("users", ())}
    employees = {e["id"]: e for e in prepared.doc.get("employees", ())}
    if store.served_from_cache:
        # The cached copy has no lastChange/history: rewrite whole entities only.
        touched = {c.user_id for c in plan.changes if c.employee_id is None and c.user_id}
        touched.update(b.user_id for b in plan.bookkeeping)
        users.update(await store.read_entities("users", (i for i in touched if i in users)))
    writes = apply.PlannedWrites(users, employees, plan, run_id, at)
    # The bulky part of the state (Entra users and groups, the Emply copy) goes in a
    # snapshot, written under a new generation only when something changed. Its Entra
    # part is packed and written while the Emply writes are under way (Azurite and
    # Table Storage do the work then, our process waits); its Emply part after them.
    # Only after both does the state name it, so the next run reads Entra from here
    # on only once Emply is written (R7).
    mirror = prepared.read.mirror
    previous = prepared.snapshot
    old_generation = prepared.state.get("snapshot")
    same_snapshot = (
        previous is not None
        and isinstance(old_generation, str)
        and store.served_from_cache
        and not writes.user_ids
        and not writes.employee_ids
        and all(mirror[k] is previous.get(k) for k in _BULK)
    )
    generation = str(old_generation) if same_snapshot else uuid.uuid4().hex
    entra_saved = None if same_snapshot else asyncio.ensure_future(
        store.save_snapshot(generation, lambda: _pack_entra(mirror), part="entra"))
    try:
        await store.write_built("users", writes.user_ids, writes.user)
        await store.write_built("employees", writes.employee_ids, writes.employee)
        if entra_saved is not None:
            await store.save_snapshot(generation, {"emply": store.emply_cache()}, part="emply")
            await entra_saved
    except BaseException:
        if entra_saved is not None:
            entra_saved.cancel()
            await asyncio.gather(entra_saved, return_exceptions=True)
            with contextlib.suppress(Exception):
                await store.delete_snapshot(generation)
        raise
    await store.save_sync_state(
        {
            "mirrorHead": {k: v for k, v in mirror.items() if k not in _BULK},
            "snapshot": generation,
            "previousMapping": plan.next_state.previous_mapping,
            "lastRunId": run_id,
            "residual": unchanged.residual(
                plan, run_id=run_id, started=started, tenant_id=prepared.settings.tenant_id,
                emply_version=store.emply_version(), organization=mirror["organization"]),
        }
    )
    if not same_snapshot and isinstance(old_generation, str):
        with contextlib.suppress(Exception):  # a leftover blob costs storage, not correctness
            await store.delete_snapshot(old_generation)


def failure(exc: BaseException) -> dict[str, Any]:
    """The report's error entry for what ended a run (`shared.errors`' reason codes)."""
    classified = errors.classify(exc)
    if classified is None:
        return {"reason": errors.BUG_REASON, "temporary": False,
                "message": f"a bug in the sync ({type(exc).__name__}: {exc}); see the logs"}
    return classified.to_json()


async def _mark_abandoned(store: store_mod.EmplyStore, taken: Mapping[str, Any],
                          run_id: str) -> None:
    """The run whose expired lease this run took was killed (a host restart, a timeout)
    and left its record `running`: mark it `abandoned` with the time it was last seen."""
    old_id = taken.get("runId")
    if not isinstance(old_id, str) or not old_id:
        return
    old = await store.get_run(old_id)
    if old is None or old.get("status") != "running":
        return  # it finished and only its lease release was lost
    last_seen = taken.get("renewedAt") or taken.get("startedAt")
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
                           clock: Clock, store: store_mod.EmplyStore | None) -> None:
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


def new_report(trigger: str, dry_run: bool, started: dt.datetime) -> dict[str, Any]:
    return {
        "runId": new_run_id(started),
        "trigger": trigger,
        "status": "running",
        "dryRun": dry_run,
        "startedAt": iso(started),
        "finishedAt": None,
        "counts": {},
        "changes": [],
        "held": [],
        "errors": [],
    }


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
    return explain.explain(key, entra, emply, user_docs, prepared.settings, plan, now)
