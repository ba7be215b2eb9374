"""plan(): the whole sync decided as data.

`plan(entra, emply, settings, state, now)` reads two snapshots and returns a
`Plan`: the changes to make, each with its rule and reason code, the
deactivations the guard holds back, and the problems to report. It never does
I/O, so `--dry-run`, `explain`, the guard and the tests all read the same plan
that apply executes.

The snapshots may hold part of the world only: a part closed under R3's keys
(`shared.reconcile.touched`), with `outside` saying what the guard needs of the rest.
The plan is then the whole world's plan restricted to that part
(`tests/unit/test_properties.py`), which is how a run plans only the users a delta
round touched.

The rules live in their own modules, mixed into one planner: `linking` (R3, R4, R6's
reactivation), `role_sync` (R11), `guard` (R6's deactivations, R7), on the state of
the plan being made (`plan_state`).
"""

from __future__ import annotations

import datetime as dt

from shared.reconcile import (
    calendars,
    event_push,
    events,
    guard,
    lifecycle,
    linking,
    model,
    photos,
    removal,
    writeback,
)


def plan(
    entra: model.EntraSnapshot,
    emply: model.EmplySnapshot,
    settings: model.Settings,
    state: model.SyncState,
    now: dt.datetime,
    *,
    approve_deactivations: int | model.Approval | None = None,
    approve_deletions: model.Approval | None = None,
    outside: model.Outside | None = None,
) -> model.Plan:
    """`approve_deactivations`: an operator's approval of held deactivations (R7); a bare
    number is `Approval(count=n)`. `approve_deletions`: of held Entra deletions (R9).
    `outside`: the snapshots hold part of the world, and this is what the rest adds."""
    approval = (
        model.Approval(count=approve_deactivations)
        if isinstance(approve_deactivations, int)
        else approve_deactivations
    )
    planner = _Planner(entra, emply, settings, state, now, outside)
    planner.approve_deletions = approve_deletions
    directory = planner.run(approval)
    # R14 and R16 after the rest: which calendars Emply keeps, and which users are
    # linked, created or reactivated, decide whose events and photos follow.
    stamp = now.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return photos.with_photos(events.with_events(directory, entra, emply), entra, emply, stamp)


class _Planner(linking.Linking, guard.Guarding):
    """The plan being made: `PlanState` with R3/R4/R11 (`linking`, `role_sync`) and R6/R7
    (`guard`) mixed in."""

    # -- the run -----------------------------------------------------------------

    def run(self, approval: model.Approval | None) -> model.Plan:
        if self.settings.enabled:
            self._check_settings_against_tenant()
        else:
            # R17: the integration is removed; what Entra holds is not looked at.
            self.changes.extend(removal.removal_changes(self.emply))
        held: tuple[model.Change, ...] = ()
        self.window = tuple(
            (at, n) for at, n in self.state.recent_deactivations
            if dt.timedelta(0) <= self.now - at < model.GUARD_WINDOW
        )
        roles_reconciled = self.settings.enabled and self.settings.sync_roles
        if self.settings.enabled:
            claimed = self._match_in_scope_users()
            self._deactivate_out_of_scope(claimed)
            held = self._guard(approval)
            self._seed_role_bases()
            deactivated = {c.user_id for c in self.changes
                           if c.kind == model.DEACTIVATE_USER and c.user_id is not None}
            if self.emply.calendars or self.entra.mailboxes:  # R13; else nothing to do
                self.changes.extend(calendars.calendar_changes(
                    self.emply, self.entra.mailboxes, self.settings, deactivated))
            if self.emply.outbound:  # R15
                self.changes.extend(event_push.push_changes(
                    self.emply, self.entra.mailboxes, self.settings, deactivated,
                    {c.user_id for c in self.changes
                     if c.kind == model.LINK_USER and c.user_id is not None}))
        self.changes.extend(lifecycle.employee_status_changes(self.emply.employees, self.now))
        deletions = self._write_back()
        held = (*held, *deletions.held)
        # Only a run that reconciles roles moves the mapping on; otherwise the one of the
        # last run that did stands (R11: changes made meanwhile are applied later).
        next_mapping = (
            self.settings.mapping if roles_reconciled else self.state.previous_mapping
        )
        return model.Plan(
            changes=tuple(self.changes),
            held=held,
            errors=tuple(self.problems),
            skips=dict(self.skips),
            bookkeeping=tuple(self.bookkeeping.values()),
            next_state=model.SyncState(
                previous_mapping=next_mapping,
                recent_deactivations=self.window,
                held_digest=self.held_digest,
            ),
            held_digest=self.held_digest,
            held_deletions_digest=deletions.digest,
            disabled=not self.settings.enabled,
        )

    def _write_back(self) -> writeback.GuardedDeletions:
        """R9's Entra writes, the deletions guarded like R7 (returned: held or not)."""
        written_back = writeback.plan_writeback(
            self.entra, self.emply, self.settings,
            links={c.user_id: c.entra_id for c in self.changes
                   if c.kind == model.LINK_USER and c.user_id and c.entra_id})
        self.changes.extend(c for c in written_back.changes if c.kind != model.ENTRA_DELETE)
        self.problems.extend(written_back.problems)
        for reason, count in written_back.skips.items():
            self.skips[reason] = self.skips.get(reason, 0) + count
        deletions = writeback.guard_deletions(
            [c for c in written_back.changes if c.kind == model.ENTRA_DELETE],
            self.settings.guard, self._linked_active_after_this_run(), self.approve_deletions)
        self.changes.extend(deletions.applied)
        self.problems.extend(deletions.problems)
        return deletions

    def _check_settings_against_tenant(self) -> None:
        known_roles = {r.id for r in self.emply.roles}
        for mapping in self.settings.groups:
            if mapping.group_id not in self.entra.groups:
                self.problems.append(
                    model.Problem(
                        model.GROUP_NOT_FOUND,
                        f"configured group {mapping.group_id} does not exist in tenant "
                        f"{self.entra.tenant_id}: it gives no one scope or roles",
                        rule="R2",
                    )
                )
            if known_roles and mapping.role_id is not None and mapping.role_id not in known_roles:
                self.problems.append(
                    model.Problem(
                        model.UNKNOWN_ROLE,
                        f"configured group {mapping.group_id} maps to role {mapping.role_id!r}, "
                        "which does not exist in Emply",
                        rule="R11",
                    )
                )
