"""A run that plans only what changed: the run of a directory-only integration.

With calendars, photos and write-back off (`covers`), every user's plan depends on the
rest of the world only through R3's keys and R7's counts. So such a run keeps both
sides in indexes (`shared.run.indexes`), folds what changed into them, and plans the
part of the world that changed: the users a delta round or the Emply side touched, the
users the last run held (R7), the employees whose resignation date has come (R8), and
everyone who shares a key with them (`touched.closure`). Its outcome is the last run's
(the residual), less what the part's plan said before, plus what it says now
(`touched.carried`). The properties in `tests/unit/test_properties.py` say this is the
whole plan.

Everything is planned again when there is nothing to carry: no saved index or
residual, a new tenant, new settings or roles. Then the world is planned in parts
(`world.parts_of_everything`), each applied before the next is planned, so memory
holds one part's users at a time; the users R7 may deactivate come last, in one part.

Invariants:

- The indexes, the state's delta links and the residual saved together describe one
  world: the one the run left. A run that fails saves none of them, so the next run
  folds the same changes again.
- Writes go through the same steps as any run, guarded by the ETags of the index
  (`protocols.EmplyTables.loaded_from`): an entity another writer changed is left out
  (`concurrent_change`) and the Emply index is marked not current, so the next run reads
  the Emply side again.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from shared.graph import reader
from shared.reconcile import convert, entity_writes, model, planner, touched
from shared.run import changelog, emply_index, entra_index, indexes, lease, world
from shared.run import report as run_report
from shared.run import state as sync_state
from shared.run.context import Deps, Run
from shared.run.recorder import Recorder
from shared.run.steps import base, change_feed


def covers(settings: model.Settings, emply: emply_index.EmplyIndex) -> bool:
    """Whether a run of these settings plans by parts: the integration on, calendars,
    photos and write-back off, and no calendar, event or outbound event in Emply."""
    return (settings.enabled and not settings.calendar_sync and not settings.photo_sync
            and not settings.write_back
            and not any(emply.other[k] for k in ("calendars", "events", "outboundEvents")))


@dataclasses.dataclass
class Sides:
    """What the run read: both sides, brought up to date, and the settings and state."""

    entra: indexes.EntraSide
    emply: indexes.EmplySide
    settings: model.Settings
    state: sync_state.SyncState
    started: dt.datetime
    steps: Sequence[base.Step]
    """The run's steps (`pipeline.STEPS`): each part's plan is applied through them."""


async def run_indexed(deps: Deps, recorder: Recorder, held: lease.Held | None,
                      approve: model.Approval | None, approve_deletions: model.Approval | None,
                      sides: Sides, warnings: tuple[run_report.Json, ...]) -> None:
    """Plan, apply and record the run (`recorder` has its report)."""
    run_id = recorder.report.run_id
    entra, emply = sides.entra.index, sides.emply.index
    await _complete(deps, sides.entra)
    everything = _everything(sides)
    await recorder.saved_progress(
        "read", entraUsers=len(entra), entraGroups=len(entra.groups.existing()),
        emplyUsers=emply.users.count, fullRead=sides.entra.read.full_read,
        calendarUsers=0)
    parts = (world.parts_of_everything(entra, emply, sides.settings, deps.store.write_unit,
                                       _held(sides.state))
             if everything else iter([_changed_part(sides)]))
    run = _PartsRun(deps, recorder, held, approve, approve_deletions, sides, warnings)
    await run.each(parts)
    outcome = run.outcome(everything)
    recorder.report = recorder.report.with_outcome(
        outcome, _read_summary(sides.entra), run.counts, warnings=warnings)
    if approve is not None and not run.deactivates:
        recorder.report = recorder.report.with_error({
            "reason": "approval_unused",
            "message": f"--approve-deactivations {approve} was given but this run holds no "
            "deactivations; nothing was approved"})
    recorder.report = dataclasses.replace(recorder.report, changes=run.changes,
                                          errors=(*recorder.report.errors, *run.errors))
    if held is None:
        return
    await run.record(outcome, run_id)


def _held(state: sync_state.SyncState) -> list[str]:
    residual = state.residual
    return [str(h["userId"]) for h in residual.outcome.held if h.get("userId")] \
        if residual is not None else []


def _everything(sides: Sides) -> bool:
    """Nothing to carry: the world is planned again as a whole."""
    return (sides.entra.everything or sides.emply.everything
            or sides.state.residual is None or sides.state.index is None)


def _changed_part(sides: Sides) -> touched.Touched:
    """What changed, and all that shares a key with it."""
    seeds = touched.Seeds(set(sides.entra.changed), set(sides.emply.changed_users),
                          set(sides.emply.changed_employees))
    for record in sides.entra.before.values():
        if record is not None and entra_index.full(record):
            seeds.before.append(touched.entra_keys(
                convert.entra_user(record[:entra_index.WIDTH])))
    previous = sides.emply.previous
    if previous is not None:
        before = world.IndexWorld(sides.entra.index, previous)
        seeds.before.extend(k for k in (before.user(u) for u in seeds.users) if k)
        seeds.before.extend(k for k in (before.employee(e) for e in seeds.employees) if k)
    seeds.users.update(_held(sides.state))
    seeds.employees.update(sides.emply.index.due(sides.started.astimezone(dt.UTC).date()))
    return touched.closure(world.IndexWorld(sides.entra.index, sides.emply.index), seeds)


async def _complete(deps: Deps, side: indexes.EntraSide) -> None:
    """Attributes of users the sync now has a use for and did not keep: read them."""
    if not side.missing:
        return
    found = await reader.read_users(deps.graph, sorted(side.missing))
    for entra_id in found.users:
        if entra_id not in side.before:
            side.before[entra_id] = side.index.record(entra_id)
    side.index.complete(found.users)
    side.changed.update(found.users)
    side.read = dataclasses.replace(side.read, requests=side.read.requests + found.requests,
                                    throttled=side.read.throttled + found.throttled)
    side.missing = set()


def _read_summary(side: indexes.EntraSide) -> run_report.EntraReadSummary:
    read = side.read
    return run_report.EntraReadSummary(full_read=read.full_read,
                                       reason=read.full_read_reason,
                                       requests=read.requests, throttled=read.throttled)


class _PartsRun:
    """Plans and applies each part in turn; keeps what the report and the state need."""

    def __init__(self, deps: Deps, recorder: Recorder, held: lease.Held | None,
                 approve: model.Approval | None, approve_deletions: model.Approval | None,
                 sides: Sides, warnings: tuple[run_report.Json, ...]) -> None:
        self.deps, self.recorder, self.held = deps, recorder, held
        self.last_run: Run | None = None
        self.approve, self.approve_deletions = approve, approve_deletions
        self.sides = sides
        self.warnings = warnings
        self.version = sides.emply.index.version
        self.changes = changelog.ChangeLog()
        self.counts: dict[str, int] = {}
        self.errors: list[run_report.Json] = []
        self.entity_errors: list[run_report.Json] = []
        self.skips: dict[str, int] = {}
        self.last: model.Plan | None = None
        self.old: model.Plan | None = None
        self.first_part: touched.Touched | None = None
        self.reusable = True
        self.deactivates = False

    async def each(self, parts: Iterator[touched.Touched]) -> None:
        for part in parts:
            for table in (self.sides.entra.index.table, self.sides.emply.index.users.table,
                          self.sides.emply.index.employees.table):
                table.forget()  # the last part's users are not looked at again
            plan = self._plan(part)
            self.last = self.recorder.plan = plan
            self.deactivates = self.deactivates or any(
                c.kind == model.DEACTIVATE_USER for c in (*plan.held, *plan.changes))
            if self.first_part is None:
                self.first_part = part
            await self.recorder.saved_progress("planned", changes=len(plan.changes),
                                               held=len(plan.held), users=len(part))
            await self._apply(part, plan)

    def _plan(self, part: touched.Touched) -> model.Plan:
        sides = self.sides
        view = world.part_view(part, sides.entra.index, sides.emply.index)
        state = sides.state.planner_state()
        if not _everything(sides) and self.old is None:
            was = world.part_view(part, sides.entra.index,
                                  sides.emply.previous or sides.emply.index,
                                  before=sides.entra.before, groups=sides.entra.groups_before)
            self.old = planner.plan(was.entra, was.emply, sides.settings, state,
                                    self.recorder_started, outside=was.outside)
        return planner.plan(view.entra, view.emply, sides.settings, state,
                            self.recorder_started, approve_deactivations=self.approve,
                            approve_deletions=self.approve_deletions, outside=view.outside)

    @property
    def recorder_started(self) -> dt.datetime:
        return self.sides.started

    async def _apply(self, part: touched.Touched, plan: model.Plan) -> None:
        sides = self.sides
        index = sides.emply.index
        view_entries = world.part_view(part, sides.entra.index, index).entries
        for problem in plan.errors:
            error = problem.to_json()
            if touched.names_entity(error):
                self.entity_errors.append(error)
        for reason, n in plan.skips.items():
            self.skips[reason] = self.skips.get(reason, 0) + n
        if self.held is None:  # a dry run: the index takes what would be written
            self._record(plan.changes)
            _put_planned(index, view_entries, plan, self.recorder.report.run_id)
            return
        if not plan.changes and not plan.bookkeeping:
            return  # nothing to write (a part with only what R7 might have deactivated)
        self.held.check()
        # Written conditionally on the index's ETags: an entity another writer changed
        # since is left out (concurrent_change), the rest written.
        loaded = await self.deps.store.loaded_from(
            self.version or "", view_entries,
            whole=[str(item["id"]) for _e, item in view_entries["users"]
                   if str(item["id"]) in index.whole_users])
        run = Run(deps=self.deps, started=self.recorder_started,
                  run_id=self.recorder.report.run_id, trigger=self.recorder.report.trigger,
                  applying=True, loaded=loaded, settings=sides.settings, state=sides.state,
                  directory=reader.EntraRead({}, False, None, 0, 0), warnings=self.warnings)
        self.recorder.applying = True
        self.last_run = run
        applied = base.Applied(plan)
        for step in sides.steps:
            # Once for the run (`record`); the mailbox pass has nothing to do: `covers`
            # means calendar sync off and no calendar or event in Emply.
            if step.name in ("sync_state", "change_feed", "mailboxes"):
                continue
            outcome = await step.apply(run, applied)
            applied = applied.then(outcome)
            if outcome.progress:
                self.recorder.progress(step.name, **outcome.progress)
        self._record(applied.changes())
        self.errors.extend(applied.errors())
        self.reusable = self.reusable and applied.reusable and not applied.conflicts
        # the part's entities, as read or as written now
        indexes.fold(index, {kind: loaded.ledger.entries(kind) for kind in emply_index.KINDS})
        if self.version is not None:
            self.version = loaded.version()

    def _record(self, changes: Iterable[model.Change]) -> None:
        for change in changes:
            self.changes.append(change.to_json())
            self.counts[change.kind] = self.counts.get(change.kind, 0) + 1

    def outcome(self, everything: bool) -> run_report.Outcome:
        last = self.last
        assert last is not None
        globals_ = [p.to_json() for p in last.errors
                    if not touched.names_entity(p.to_json())]
        if everything or self.old is None:
            errors_, skips = [*globals_, *self.entity_errors], dict(self.skips)
        else:
            residual = self.sides.state.residual
            assert residual is not None
            errors_, skips = touched.carried(residual.outcome.errors, residual.outcome.skips,
                                             self.old, last)
        return run_report.Outcome(status=last.status, held=tuple(c.to_json() for c in last.held),
                                  errors=tuple(errors_), skips=skips,
                                  held_digest=last.held_digest)

    async def record(self, outcome: run_report.Outcome, run_id: str) -> None:
        """The indexes, the state, the change feed: what the next run starts from."""
        sides, store = self.sides, self.deps.store
        last = self.last
        assert last is not None
        sides.emply.index.version = self.version
        residual = sync_state.residual_of(
            outcome, last.next_state, run_id=run_id, started=self.recorder_started,
            tenant_id=sides.settings.tenant_id, emply_version=self.version,
            organization=sides.entra.index.head.get("organization") or {},
        ) if self.reusable else None
        await indexes.save_with_state(
            store, sides.entra.index, sides.emply.index, sides.state,
            lambda saved: sync_state.after_run(
                sides.entra.index.head, generation=saved[0], delta=saved[1],
                next_state=last.next_state, run_id=run_id, residual=residual))
        feed = await change_feed.record(self.deps, run_id, self.changes)
        for error in feed.errors:
            self.recorder.report = self.recorder.report.with_error(error)


def _put_planned(index: emply_index.EmplyIndex, entries: Mapping[str, list[Any]],
                 plan: model.Plan, run_id: str) -> None:
    """A dry run's index: the entities as the plan would write them."""
    users = {str(item["id"]): item for _e, item in entries["users"]}
    employees = {str(item["id"]): item for _e, item in entries["employees"]}
    writes = entity_writes.PlannedWrites(users, employees, plan, run_id, "")
    tags = {str(item["id"]): etag for kind in ("users", "employees")
            for etag, item in entries[kind]}
    for user_id in writes.user_ids:
        index.put("users", (tags.get(user_id), {
            k: v for k, v in writes.user(user_id).items() if k not in emply_index.HEAVY}))
    for employee_id in writes.employee_ids:
        index.put("employees", (tags.get(employee_id), writes.employee(employee_id)))
