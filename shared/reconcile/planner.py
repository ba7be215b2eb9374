"""plan(): the whole sync decided as data.

`plan(entra, emply, settings, state, now)` reads two snapshots and returns a
`Plan`: the changes to make, each with its rule and reason code, the
deactivations the guard holds back, and the problems to report. It never does
I/O, so `--dry-run`, `explain`, the guard and the tests all read the same plan
that apply executes. With a `focus` (an on-demand run's one-user view,
`shared.reconcile.focus`) it acts on that user alone.

The snapshots may also hold part of the world only: a part closed under R3's keys
(`shared.reconcile.touched`), with `outside` saying what the guard needs of the rest.
The plan is then the whole world's plan restricted to that part
(`tests/unit/test_properties.py`), which is how a run plans only the users a delta
round touched.

The rules each have their module (scope, matching, creation, roles, lifecycle, guard,
calendars, events, event_push, writeback, photos); this one puts them in order.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from typing import Any

from shared.reconcile import (
    calendars,
    creation,
    event_push,
    events,
    focus,
    guard,
    lifecycle,
    matching,
    model,
    photos,
    removal,
    role_sync,
    scope,
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
    only: focus.Focus | None = None,
    outside: model.Outside | None = None,
) -> model.Plan:
    """`approve_deactivations`: an operator's approval of held deactivations (R7); a bare
    number is `Approval(count=n)`. `approve_deletions`: of held Entra deletions (R9).
    `only`: an on-demand run's focus (`shared.reconcile.focus`). `outside`: the
    snapshots hold part of the world, and this is what the rest adds."""
    approval = (
        model.Approval(count=approve_deactivations)
        if isinstance(approve_deactivations, int)
        else approve_deactivations
    )
    planner = _Planner(entra, emply, settings, state, now, only, outside)
    planner.approve_deletions = approve_deletions
    directory = planner.run(approval)
    # R14 and R16 after the rest: which calendars Emply keeps, and which users are
    # linked, created or reactivated, decide whose events and photos follow.
    stamp = now.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    acting = planner.acting
    return photos.with_photos(events.with_events(directory, entra, acting), entra, acting,
                              stamp)


class _Planner:
    def __init__(
        self,
        entra: model.EntraSnapshot,
        emply: model.EmplySnapshot,
        settings: model.Settings,
        state: model.SyncState,
        now: dt.datetime,
        only: focus.Focus | None = None,
        outside: model.Outside | None = None,
    ) -> None:
        self.entra = entra
        self.emply = emply
        self.settings = settings
        self.state = state
        self.now = now
        self.only = only
        self.elsewhere = outside.linked_active if outside is not None else 0
        """Linked active users outside the part of the world the snapshots hold (R7's base)."""
        self.acting = emply
        """The Emply side this plan acts on: all of it, or a focus's users (`_narrow`)."""
        self.acting_ids: set[str] | None = None if only is None else {
            u.id for u in emply.users if only.names(u)}
        self.stamp = now.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
        self.groups_by_user = scope.configured_groups_by_user(entra, settings)
        self.roles = role_sync.RoleSync(
            settings, state.previous_mapping,
            frozenset(r.id for r in emply.roles if r.administrator))
        self.changes: list[model.Change] = []
        self.problems: list[model.Problem] = []
        self.skips: dict[str, int] = {}
        self.bookkeeping: dict[str, model.Bookkeeping] = {}
        self.looked_at: set[str] = set()
        """Linked users kept in scope by this run (their groups are known now)."""
        self.held_digest: str | None = None
        self.window: guard.Window = ()
        self._domains: dict[str, str] = {}
        self._group_lists: dict[tuple[str, ...], list[str]] = {}
        self.approve_deletions: model.Approval | None = None

    # -- the run -----------------------------------------------------------------

    def run(self, approval: model.Approval | None) -> model.Plan:
        held: tuple[model.Change, ...] = ()
        self.window = guard.recent(self.state.recent_deactivations, self.now)
        if self.settings.enabled:
            self.problems.extend(scope.settings_problems(self.entra, self.emply, self.settings))
            held = self._directory(approval)
        else:
            # R17: the integration is removed; what Entra holds is not looked at.
            self.changes.extend(removal.removal_changes(self.emply))
        self.changes.extend(lifecycle.employee_status_changes(self.acting.employees, self.now))
        deletions = self._write_back()
        held = (*held, *deletions.held)
        return model.Plan(
            changes=tuple(self.changes),
            held=held,
            errors=tuple(self.problems),
            skips=dict(self.skips),
            bookkeeping=tuple(self.bookkeeping.values()),
            next_state=self._next_state(),
            held_digest=self.held_digest,
            held_deletions_digest=deletions.digest,
            disabled=not self.settings.enabled,
        )

    def _directory(self, approval: model.Approval | None) -> tuple[model.Change, ...]:
        """R2–R7, R11 and R13/R15 of an enabled integration; the deactivations held."""
        claimed = self._match_in_scope_users()
        self._narrow()
        verdict = guard.judge(
            guard.out_of_scope(self.emply.users, claimed, self.entra, self.settings,
                               self.groups_by_user, self._acts_on),
            window=self.window, now=self.now, guard=self.settings.guard,
            linked_active=self._linked_active_after(),
            approval=approval, last_held=self.state.held_digest)
        self.changes.extend(verdict.applied)
        self.problems.extend(verdict.problems)
        self.window, self.held_digest = verdict.window, verdict.held_digest
        self._seed_role_bases()
        deactivated = {c.user_id for c in self.changes
                       if c.kind == model.DEACTIVATE_USER and c.user_id is not None}
        acting = self.acting
        if not self.entra.calendars_apart and (  # R13; else nothing to do here
                acting.calendars or self.entra.mailboxes):
            self.changes.extend(calendars.calendar_changes(
                acting, self.entra.mailboxes, self.settings, deactivated))
        if acting.outbound:  # R15
            self.changes.extend(event_push.push_changes(
                acting, self.entra, self.settings, deactivated,
                {c.user_id for c in self.changes
                 if c.kind == model.LINK_USER and c.user_id is not None}))
        return verdict.held

    def _write_back(self) -> writeback.GuardedDeletions:
        """R9/R10. Planned over the whole Emply side (two users wanting one Entra user is
        an ambiguity even when only one of them is asked about), then narrowed."""
        written_back = writeback.plan_writeback(
            self.entra, self.emply, self.settings,
            links={c.user_id: c.entra_id for c in self.changes
                   if c.kind == model.LINK_USER and c.user_id and c.entra_id})
        changes, problems = written_back.changes, written_back.problems
        if self.acting_ids is not None and self.only is not None:
            changes = tuple(c for c in changes if focus.concerns(c, self.acting_ids))
            problems = tuple(p for p in problems if focus.concerns_problem(
                p, self.acting_ids, self.only.entra_ids))
        else:  # counts over every user: an on-demand run's answer is about one
            for reason, count in written_back.skips.items():
                self.skips[reason] = self.skips.get(reason, 0) + count
        self.changes.extend(c for c in changes if c.kind != model.ENTRA_DELETE)
        self.problems.extend(problems)
        deletions = writeback.guard_deletions(
            [c for c in changes if c.kind == model.ENTRA_DELETE], self.settings.guard,
            self._linked_active_after(), self.approve_deletions)
        self.changes.extend(deletions.applied)
        self.problems.extend(deletions.problems)
        return deletions

    def _next_state(self) -> model.SyncState:
        if self.only is not None:
            # One user's plan leaves the run-wide memory as the last full run left it;
            # only R7's window counts its deactivations.
            return dataclasses.replace(self.state, recent_deactivations=self.window)
        # Only a run that reconciles roles moves the mapping on; otherwise the one of the
        # last run that did stands (R11: changes made meanwhile are applied later).
        reconciled = self.settings.enabled and self.settings.sync_roles
        return model.SyncState(
            previous_mapping=self.settings.mapping if reconciled else self.state.previous_mapping,
            recent_deactivations=self.window,
            held_digest=self.held_digest,
        )

    def _narrow(self) -> None:
        """With a focus: act on its users and those this plan links or creates for it."""
        if self.acting_ids is None:
            return
        self.acting_ids.update(c.user_id for c in self.changes if c.user_id is not None)
        self.acting = focus.acting(self.emply, self.acting_ids)

    def _acts_on(self, user: model.EmplyUser) -> bool:
        return self.acting_ids is None or user.id in self.acting_ids

    def _remember(self, user_id: str, **fields: Any) -> None:
        kept = self.bookkeeping.get(user_id) or model.Bookkeeping(user_id)
        self.bookkeeping[user_id] = dataclasses.replace(
            kept, **{model.BOOKKEPT[name]: value for name, value in fields.items()})

    def _linked_active_after(self) -> int:
        return guard.linked_active_after(self.emply.users, self.changes) + self.elsewhere

    # -- R3, R4, R6 reactivation, R11 ----------------------------------------------

    def _in_scope(self) -> list[tuple[model.EntraUser, tuple[str, ...]]]:
        """R2: the in-scope Entra users with their configured groups, by id."""
        in_scope = []
        for entra_id in sorted(self.groups_by_user):
            entra_user = self.entra.users.get(entra_id)
            groups = self.groups_by_user[entra_id]
            if entra_user is not None and scope.in_scope(entra_user, groups, self.settings):
                in_scope.append((entra_user, groups))
        return in_scope

    def _match_in_scope_users(self) -> set[str]:
        """Links, creates, reactivates and sets roles; returns the Emply user ids kept in scope.

        Matching is resolved to a fixpoint (`matching.resolve`). What is left: ties at one
        step are `ambiguous_match` for all involved; an Entra user whose only candidate is
        held by a stronger (unresolved) claim has no match and is created (R4).
        """
        index = matching.UserIndex(
            self.emply.users, self.settings.tenant_id, self.emply.employees, self.entra.users
        )
        in_scope = self._in_scope()
        resolved = matching.resolve(index, [e for e, _ in in_scope])
        kept: set[str] = set(resolved.taken)
        creator = creation.Creator(self.emply, index)
        for entra_user, groups in in_scope:
            acts = self.only is None or entra_user.id.lower() in self.only.entra_ids
            match = resolved.won.get(entra_user.id)
            if match is not None and match.user is not None:
                user = match.user
                # With allowed domains, being in scope already says the domain is allowed.
                if (match.step == 1 and not self.settings.allowed_domains
                        and user.linked_domain is not None
                        and not scope.domain_kept(entra_user, user.linked_domain, self.settings)):
                    kept.discard(user.id)  # R6 domain_changed: deactivated below
                elif acts:
                    self._keep_linked(user, entra_user, groups, match.step)
                continue
            match = resolved.found[entra_user.id]
            if match.ambiguous:
                self._report_tie(acts, matching.ambiguous_problem(
                    entra_user, match.step, match.ambiguous))
                kept.update(u.id for u in match.ambiguous)
                continue
            if match.user is not None:
                rivals = resolved.claims[match.user.id]
                if any(step == match.step for step, e, _ in rivals if e != entra_user.id):
                    tied = sorted(e for step, e, _ in rivals if step == match.step)
                    self._report_tie(acts, matching.ambiguous_problem(
                        entra_user, match.step, (match.user,), tied))
                    kept.add(match.user.id)
                    continue
                # A stronger claim (itself unresolved) holds this Emply user: no match here.
            self._create_or_refuse(entra_user, groups, creator, acts)
        return kept

    def _report_tie(self, acts: bool, problem: model.Problem) -> None:
        """A rival's tie is part of a focused answer when a focused user is among it."""
        if acts or (self.only is not None and self.acting_ids is not None and
                    focus.concerns_problem(problem, self.acting_ids, self.only.entra_ids)):
            self.problems.append(problem)

    def _create_or_refuse(self, entra_user: model.EntraUser, groups: tuple[str, ...],
                          creator: creation.Creator, acts: bool = True) -> None:
        refusal = creator.refusal(entra_user, acted_on=acts)
        if not acts:  # a rival: what a full run creates for it takes its username and e-mail
            return
        if refusal is not None:
            reason, words = refusal
            self.problems.append(model.Problem(reason, words, entra_id=entra_user.id,
                                               rule="R4"))
            return
        self.changes.append(creation.create_change(
            entra_user, groups, self.settings, stamp=self.stamp,
            domain=self._domain(entra_user),
            basis=self.roles.basis(groups) if self.settings.sync_roles else None,
            group_names=self._group_names(groups)))

    def _keep_linked(
        self,
        user: model.EmplyUser,
        entra_user: model.EntraUser,
        groups: tuple[str, ...],
        step: int,
    ) -> None:
        if step > 1 or user.entra_id != entra_user.id:
            self.changes.append(self._link(user, entra_user, step))
        elif user.linked_domain is None or self.settings.allowed_domains:
            # A link from before the domain was recorded takes its current one (deactivating
            # nobody); under an allowed list, a move between allowed domains is followed, so
            # emptying the list later does not deactivate such users.
            domain = self._domain(entra_user)
            if domain != user.linked_domain:
                self._remember(user.id, linkedDomain=domain)
        status = user.status
        if user.status == "deactivated" and user.deactivated_by == "sync":
            status = "active"
            self.changes.append(model.Change(
                model.REACTIVATE_USER, "R6", model.REACTIVATE_USER, user.id, entra_user.id,
                {"status": "deactivated", "deactivationReason": user.deactivation_reason},
                {"status": "active", "deactivationReason": None, "deactivatedBy": None},
                f"back in scope (member of {self._group_names(groups)}); it was deactivated "
                f"by the sync ({user.deactivation_reason})"))
        if tuple(user.sync_groups) != groups:
            shared = self._group_lists.get(groups)
            if shared is None:  # one (read-only) list per set of groups, not one per user
                shared = self._group_lists[groups] = list(groups)
            self._remember(user.id, syncGroups=shared)
        self.looked_at.add(user.id)
        if status == "active" and self.settings.sync_roles:
            self._sync_roles(user, entra_user, groups)
        else:
            self._seed_role_basis(user, groups)

    def _link(self, user: model.EmplyUser, entra_user: model.EntraUser,
              step: int) -> model.Change:
        """R3's `link_user`: the step that found the user, or a re-created account."""
        how = matching.STEP_WORDS.get(step, "Entra object id")
        reason = matching.STEP_REASONS.get(step, model.LINK_USER)
        words = f"linked to Entra user {entra_user.user_principal_name} by {how}"
        if step > 1 and matching.is_replaceable(user, self.entra.users):
            reason = model.ENTRA_ACCOUNT_REPLACED
            words += (
                f"; its Entra user {user.entra_id} was deleted and this account was "
                "created in its place"
            )
        return model.Change(
            model.LINK_USER, "R3", reason, user.id, entra_user.id,
            {"entraId": user.entra_id, "tenantId": user.link_tenant_id,
             "linkedDomain": user.linked_domain},
            {"entraId": entra_user.id, "tenantId": self.settings.tenant_id,
             "linkedAt": self.stamp, "linkedDomain": self._domain(entra_user)},
            words)

    def _sync_roles(self, user: model.EmplyUser, entra_user: model.EntraUser,
                    groups: tuple[str, ...]) -> None:
        done = self.roles.reconcile(user, entra_user, groups)
        if done.skipped is not None:
            self.skips[done.skipped] = self.skips.get(done.skipped, 0) + 1
        if done.basis is not None:
            self._remember(user.id, roleBasis=done.basis)
        if done.change is not None:
            self.changes.append(done.change)

    def _seed_role_bases(self) -> None:
        """Keep a basis for linked users whose roles this run did not reconcile and that
        have none yet (`role_sync.RoleSync.seed`)."""
        for user in self.emply.users:
            if user.entra_id is not None and user.id not in self.looked_at \
                    and self._acts_on(user):
                self._seed_role_basis(user, user.sync_groups)

    def _seed_role_basis(self, user: model.EmplyUser, groups: tuple[str, ...]) -> None:
        basis = self.roles.seed(user, groups)
        if basis is not None:
            self._remember(user.id, roleBasis=basis)

    def _domain(self, entra_user: model.EntraUser) -> str:
        """The UPN's domain, one shared string per domain."""
        domain = model.upn_domain(entra_user.user_principal_name)
        return self._domains.setdefault(domain, domain)

    def _group_names(self, groups: Iterable[str]) -> str:
        names = [lifecycle.group_name(self.entra, g) for g in groups]
        return ", ".join(names) or "no configured group"
