"""plan(): the whole sync decided as data.

`plan(entra, emply, settings, state, now)` reads two snapshots and returns a
`Plan`: the changes to make, each with its rule and reason code, the
deactivations the guard holds back, and the problems to report. It never does
I/O, so `--dry-run`, `explain`, the guard and the tests all read the same plan
that apply executes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from shared.reconcile import (
    calendars,
    event_push,
    events,
    lifecycle,
    matching,
    model,
    photos,
    removal,
    roles,
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
) -> model.Plan:
    """`approve_deactivations`: an operator's approval of held deactivations (R7); a bare
    number is `Approval(count=n)`. `approve_deletions`: of held Entra deletions (R9)."""
    approval = (
        model.Approval(count=approve_deactivations)
        if isinstance(approve_deactivations, int)
        else approve_deactivations
    )
    planner = _Planner(entra, emply, settings, state, now)
    planner.approve_deletions = approve_deletions
    directory = planner.run(approval)
    # R14 and R16 after the rest: which calendars Emply keeps, and which users are
    # linked, created or reactivated, decide whose events and photos follow.
    stamp = now.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return photos.with_photos(events.with_events(directory, entra, emply), entra, emply, stamp)


class _Planner:
    def __init__(
        self,
        entra: model.EntraSnapshot,
        emply: model.EmplySnapshot,
        settings: model.Settings,
        state: model.SyncState,
        now: dt.datetime,
    ) -> None:
        self.entra = entra
        self.emply = emply
        self.settings = settings
        self.state = state
        self.now = now
        self.stamp = now.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
        self.groups_by_user = scope.configured_groups_by_user(entra, settings)
        self.admin_roles = frozenset(r.id for r in emply.roles if r.administrator)
        self.changes: list[model.Change] = []
        self.deactivations: list[model.Change] = []
        self.problems: list[model.Problem] = []
        self.skips: dict[str, int] = {}
        self.bookkeeping: dict[str, model.Bookkeeping] = {}
        self.reconciled_roles: set[str] = set()
        self.looked_at: set[str] = set()
        """Linked users kept in scope by this run (their groups are known now)."""
        self.held_digest: str | None = None
        self.window: tuple[tuple[dt.datetime, int], ...] = ()
        self._bases: dict[tuple[str, ...], dict[str, str | None]] = {}
        self._domains: dict[str, str] = {}
        self._group_lists: dict[tuple[str, ...], list[str]] = {}
        self.approve_deletions: model.Approval | None = None

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
                    self.emply, self.entra, self.settings, deactivated,
                    {c.user_id for c in self.changes
                     if c.kind == model.LINK_USER and c.user_id is not None}))
        self.changes.extend(lifecycle.employee_status_changes(self.emply.employees, self.now))
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

    def _remember(self, user_id: str, **fields: Any) -> None:
        kept = self.bookkeeping.get(user_id) or model.Bookkeeping(user_id)
        self.bookkeeping[user_id] = dataclasses.replace(
            kept, **{model.BOOKKEPT[name]: value for name, value in fields.items()})

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

    # -- R3, R4, R6 reactivation, R11 ----------------------------------------------

    def _match_in_scope_users(self) -> set[str]:
        """Links, creates, reactivates and sets roles; returns the Emply user ids kept in scope.

        The result must not depend on the order of Entra ids, and must be what the next run
        would also find (plan → apply → plan yields nothing), so matching is resolved to a
        fixpoint: each round gives every Emply user claimed at a strictly earliest R3 step by
        exactly one Entra user to that user; users given away count as linked in the next
        round, which may make other matches unique. What is left: ties at one step are
        `ambiguous_match` for all involved; an Entra user whose only candidate is held by a
        stronger (unresolved) claim has no match and is created (R4).
        """
        index = matching.UserIndex(
            self.emply.users, self.settings.tenant_id, self.emply.employees, self.entra.users
        )
        in_scope = []
        for entra_id in sorted(self.groups_by_user):
            entra_user = self.entra.users.get(entra_id)
            groups = self.groups_by_user[entra_id]
            if entra_user is not None and scope.in_scope(entra_user, groups, self.settings):
                in_scope.append((entra_user, groups))

        taken: dict[str, str] = {}  # Emply user id → the Entra id it goes to
        won: dict[str, matching.Match] = {}
        pending = in_scope
        while True:
            found = {e.id: index.find(e, taken) for e, _ in pending}
            claims = _claims(found)
            winners = {
                rivals[0][1]: user_id
                for user_id, rivals in claims.items()
                if len(rivals) == 1 and rivals[0][2]
            }
            if not winners:
                break
            for entra_id, user_id in winners.items():
                taken[user_id] = entra_id
                won[entra_id] = found[entra_id]
            pending = [(e, g) for e, g in pending if e.id not in won]

        kept: set[str] = set(taken)
        creator = _Creator(self.emply, index)
        for entra_user, groups in in_scope:
            match = won.get(entra_user.id)
            if match is not None and match.user is not None:
                user = match.user
                # With allowed domains, being in scope already says the domain is allowed.
                if (match.step == 1 and not self.settings.allowed_domains
                        and user.linked_domain is not None
                        and not scope.domain_kept(entra_user, user.linked_domain, self.settings)):
                    kept.discard(user.id)  # R6 domain_changed: deactivated below
                    continue
                self._keep_linked(user, entra_user, groups, match.step)
                continue
            match = found[entra_user.id]
            if match.ambiguous:
                self._ambiguous(entra_user, match.step, match.ambiguous)
                kept.update(u.id for u in match.ambiguous)
                continue
            if match.user is not None:
                rivals = claims[match.user.id]
                if any(step == match.step for step, e, _ in rivals if e != entra_user.id):
                    tied = sorted(e for step, e, _ in rivals if step == match.step)
                    self._ambiguous(entra_user, match.step, (match.user,), tied)
                    kept.add(match.user.id)
                    continue
                # A stronger claim (itself unresolved) holds this Emply user: no match here.
            self._create_or_refuse(entra_user, groups, creator)
        return kept

    def _ambiguous(
        self,
        entra_user: model.EntraUser,
        step: int,
        candidates: Iterable[model.EmplyUser],
        rivals: Iterable[str] = (),
    ) -> None:
        what = STEP_WORDS[step]
        ids = sorted(u.id for u in candidates)
        others = [e for e in rivals if e != entra_user.id]
        if others:
            detail = (
                f"Emply user {ids[0]} matches by {what} both this and Entra user(s) "
                f"{', '.join(others)}"
            )
        else:
            detail = f"more than one Emply user matches by {what}: {', '.join(ids)}"
        self.problems.append(
            model.Problem(
                model.AMBIGUOUS_MATCH,
                f"{entra_user.user_principal_name}: {detail}; nothing changed until a person "
                "makes the match unique",
                entra_id=entra_user.id,
                rule="R3",
                candidates=tuple(ids),
            )
        )

    def _create_or_refuse(
        self,
        entra_user: model.EntraUser,
        groups: tuple[str, ...],
        creator: _Creator,
    ) -> None:
        refusal = creator.refusal(entra_user)
        if refusal is not None:
            reason, words = refusal
            self.problems.append(
                model.Problem(reason, words, entra_id=entra_user.id, rule="R4")
            )
            return
        user_id = new_user_id(entra_user.id)
        user_roles = roles.roles_for_new_user(groups, self.settings)
        after: dict[str, Any] = {
            "id": user_id,
            "username": entra_user.user_principal_name.strip(),
            "email": entra_user.mail_or_upn.strip(),
            "displayName": entra_user.display_name,
            "status": "active",
            "roles": list(user_roles),
            "employeeId": None,
            "source": "entra",
            "entraId": entra_user.id,
            "tenantId": self.settings.tenant_id,
            "linkedAt": self.stamp,
            "calendarSync": True,
            "syncGroups": list(groups),
            "linkedDomain": self._domain(entra_user),
        }
        if self.settings.sync_roles:
            after["roleBasis"] = self._basis(groups)
        self.changes.append(
            model.Change(
                model.CREATE_USER,
                "R4",
                model.CREATE_USER,
                user_id,
                entra_user.id,
                {},
                after,
                f"created from Entra user {entra_user.user_principal_name} "
                f"(member of {self._group_names(groups)}) with roles {', '.join(user_roles)}",
            )
        )

    def _keep_linked(
        self,
        user: model.EmplyUser,
        entra_user: model.EntraUser,
        groups: tuple[str, ...],
        step: int,
    ) -> None:
        if step > 1 or user.entra_id != entra_user.id:
            domain = self._domain(entra_user)
            how = STEP_WORDS.get(step, "Entra object id")
            reason = STEP_REASONS.get(step, model.LINK_USER)
            words = f"linked to Entra user {entra_user.user_principal_name} by {how}"
            if step > 1 and matching.is_replaceable(user, self.entra.users):
                reason = model.ENTRA_ACCOUNT_REPLACED
                words += (
                    f"; its Entra user {user.entra_id} was deleted and this account was "
                    "created in its place"
                )
            self.changes.append(
                model.Change(
                    model.LINK_USER,
                    "R3",
                    reason,
                    user.id,
                    entra_user.id,
                    {
                        "entraId": user.entra_id,
                        "tenantId": user.link_tenant_id,
                        "linkedDomain": user.linked_domain,
                    },
                    {
                        "entraId": entra_user.id,
                        "tenantId": self.settings.tenant_id,
                        "linkedAt": self.stamp,
                        "linkedDomain": domain,
                    },
                    words,
                )
            )
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
            self.changes.append(
                model.Change(
                    model.REACTIVATE_USER,
                    "R6",
                    model.REACTIVATE_USER,
                    user.id,
                    entra_user.id,
                    {"status": "deactivated", "deactivationReason": user.deactivation_reason},
                    {"status": "active", "deactivationReason": None, "deactivatedBy": None},
                    f"back in scope (member of {self._group_names(groups)}); it was deactivated "
                    f"by the sync ({user.deactivation_reason})",
                )
            )
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

    def _sync_roles(
        self, user: model.EmplyUser, entra_user: model.EntraUser, groups: tuple[str, ...]
    ) -> None:
        if user.employee_id:
            skip = model.EMPLOYEE_PROFILE_CONTROLS_ROLES
            self.skips[skip] = self.skips.get(skip, 0) + 1
            return
        decision = roles.decide_roles(
            user.roles,
            groups,
            self.settings.mapping,
            self._role_basis(user),
            self.admin_roles,
        )
        self.reconciled_roles.add(user.id)
        basis = self._basis(groups)
        if basis != user.role_basis:
            self._remember(user.id, roleBasis=basis)
        if decision.changed_from(user.roles):
            self.changes.append(
                model.Change(
                    model.SET_ROLES,
                    "R11",
                    decision.reason,
                    user.id,
                    entra_user.id,
                    {"roles": list(user.roles)},
                    {"roles": list(decision.roles)},
                    f"FAQ case {decision.case}: {decision.explanation}",
                )
            )

    def _basis(self, groups: tuple[str, ...]) -> dict[str, str | None]:
        """The basis for users in `groups`, one shared (read-only) dict per set of groups:
        100,000 users have a few dozen distinct ones, and each dict costs memory."""
        basis = self._bases.get(groups)
        if basis is None:
            basis = self._bases[groups] = roles.basis_of(groups, self.settings.mapping)
        return basis

    def _domain(self, entra_user: model.EntraUser) -> str:
        """The UPN's domain, one shared string per domain."""
        domain = model.upn_domain(entra_user.user_principal_name)
        return self._domains.setdefault(domain, domain)

    def _role_basis(self, user: model.EmplyUser) -> Mapping[str, str | None] | None:
        """The user's R11 basis; for a user linked before bases were kept per user, the
        run-wide mapping of the last run that reconciled roles, over the groups the user
        was in then."""
        if user.role_basis is not None:
            return user.role_basis
        previous = self.state.previous_mapping
        if previous is None or not user.sync_groups:
            return None
        return {g: previous[g] for g in user.sync_groups if g in previous}

    def _seed_role_bases(self) -> None:
        """Keep a basis for linked users whose roles this run did not reconcile (deactivated,
        or roles off) and that have none yet, so a mapping change made meanwhile is applied
        when their roles are next reconciled (R11, case 2D) rather than lost."""
        for user in self.emply.users:
            if user.entra_id is not None and user.id not in self.looked_at:
                self._seed_role_basis(user, user.sync_groups)

    def _seed_role_basis(self, user: model.EmplyUser, groups: tuple[str, ...]) -> None:
        # Users with an employee profile never have their roles reconciled (case 1).
        if user.role_basis is not None or user.employee_id or user.id in self.reconciled_roles:
            return
        previous = self.state.previous_mapping
        if previous is None and self.settings.sync_roles:
            # Roles are reconciled for the first time: the others' basis is this mapping.
            previous = self.settings.mapping
        if previous is not None and groups:
            self._remember(user.id, roleBasis={g: previous[g] for g in groups if g in previous})

    # -- R6 deactivation and R7 guard -------------------------------------------------

    def _deactivate_out_of_scope(self, kept: set[str]) -> None:
        for user in self.emply.users:
            if user.entra_id is None or user.id in kept or user.status != "active":
                continue
            reason, words = lifecycle.deactivation_reason(
                user, self.entra, self.settings, self.groups_by_user.get(user.entra_id, ())
            )
            self.deactivations.append(
                model.Change(
                    model.DEACTIVATE_USER,
                    "R6",
                    reason,
                    user.id,
                    user.entra_id,
                    {"status": "active"},
                    {
                        "status": "deactivated",
                        "deactivationReason": reason,
                        "deactivatedBy": "sync",
                    },
                    words,
                )
            )

    def _guard(self, approval: model.Approval | None) -> tuple[model.Change, ...]:
        """R7. Deactivations applied without approval in the last `GUARD_WINDOW` count too
        (and so do the users they deactivated, in the percentage's base). Held
        deactivations are approved by their count and digest, or by their count alone
        when they are the very set the last run held (the one the operator was shown)."""
        count = len(self.deactivations)
        if not count:
            return ()
        recent = sum(n for _, n in self.window)
        linked_active = self._linked_active_after_this_run()
        guard = self.settings.guard
        digest = model.held_digest(c.user_id for c in self.deactivations)
        if not guard.holds(count + recent, linked_active + recent):
            self.changes.extend(self.deactivations)
            self.window = (*self.window, (self.now, count))
            return ()
        mismatch = self._approval_mismatch(approval, count, digest)
        if approval is not None and mismatch is None:
            self.changes.extend(self.deactivations)  # approved: not counted in the window
            return ()
        self.held_digest = digest
        earlier = (
            f" (with {recent} applied without approval in the last "
            f"{model.GUARD_WINDOW.total_seconds() / 3600:g} h)" if recent else ""
        )
        limit = (
            f"{count} deactivations{earlier} exceed the guard (maxCount {guard.max_count}, "
            f"or from minCount {guard.min_count} on maxPercent {guard.max_percent:g}% of "
            f"{linked_active + recent} linked active users)"
        )
        if mismatch is not None:
            self.problems.append(model.Problem(model.APPROVAL_MISMATCH, mismatch, rule="R7"))
        self.problems.append(
            model.Problem(
                model.HELD_BY_GUARD,
                f"{limit}: held (set {digest}); approve exactly these with "
                f"--approve-deactivations {count}:{digest} "
                f'or {{"approveDeactivations": "{count}:{digest}"}}',
                rule="R7",
            )
        )
        return tuple(self.deactivations)

    def _approval_mismatch(
        self, approval: model.Approval | None, count: int, digest: str
    ) -> str | None:
        """Why `approval` does not approve these `count` deactivations; None if it does."""
        if approval is None:
            return None
        if approval.count is not None and approval.count != count:
            return (
                f"approval was for {approval.count} deactivations but this run would make "
                f"{count}; nothing was approved"
            )
        if approval.digest is not None and approval.digest != digest:
            return (
                f"approval was for the held set {approval.digest} but this run would "
                f"deactivate set {digest} (other users than those shown); nothing was approved"
            )
        last = self.state.held_digest
        if approval.digest is None and last is not None and last != digest:
            return (
                f"approval of {count} deactivations was given, but the last run held set "
                f"{last} and this run would deactivate set {digest} (other users than those "
                f"shown); nothing was approved: approve with {count}:{digest} after checking them"
            )
        return None

    def _linked_active_after_this_run(self) -> int:
        """The guard's base: linked active users once this run's creations, links and
        reactivations land (before any deactivation). Counting those too keeps the guard
        from holding, say, the one leaver of an initial sync that creates hundreds."""
        before = {u.id for u in self.emply.users if u.entra_id is not None and u.status == "active"}
        statuses = {u.id: u.status for u in self.emply.users}
        gained = {
            c.user_id
            for c in self.changes
            if c.user_id is not None
            and c.user_id not in before
            and (
                c.kind in (model.CREATE_USER, model.REACTIVATE_USER)
                or (c.kind == model.LINK_USER and statuses.get(c.user_id) == "active")
            )
        }
        return len(before) + len(gained)

    def _group_names(self, groups: Iterable[str]) -> str:
        names = [lifecycle.group_name(self.entra, g) for g in groups]
        return ", ".join(names) or "no configured group"


STEP_WORDS = {
    1: "Entra object id",
    2: "username = UPN",
    3: "e-mail = Entra mail",
    4: "employee profile e-mail = Entra mail",
}
STEP_REASONS = {
    2: model.LINKED_BY_USERNAME,
    3: model.LINKED_BY_EMAIL,
    4: model.LINKED_BY_EMPLOYEE_EMAIL,
}


def _claims(found: dict[str, matching.Match]) -> dict[str, list[tuple[int, str, bool]]]:
    """Emply user id → the claims at its earliest step: (step, Entra id, unique?).

    An ambiguous match claims each of its candidates too (not uniquely), so a tie
    elsewhere cannot quietly hand one of them to a weaker match."""
    claims: dict[str, list[tuple[int, str, bool]]] = {}
    for entra_id, match in found.items():
        unique = match.user is not None
        for user in (match.user,) if match.user is not None else match.ambiguous:
            mine = claims.setdefault(user.id, [])
            if mine and mine[0][0] < match.step:
                continue
            if mine and mine[0][0] > match.step:
                mine.clear()
            mine.append((match.step, entra_id, unique))
    return claims


class _Creator:
    """R4's conditions for creating a user, with what this run has created so far."""

    def __init__(self, emply: model.EmplySnapshot, index: matching.UserIndex) -> None:
        self.index = index
        self.employees_by_email = {model.norm(e.email): e for e in emply.employees}
        self.users_by_name = {model.norm(u.username): u for u in emply.users}
        self.users_by_email = {model.norm(u.email): u for u in emply.users if u.email}
        self.user_ids = {u.id for u in emply.users}

    def refusal(self, entra_user: model.EntraUser) -> tuple[str, str] | None:
        employee = self.employees_by_email.get(model.norm(entra_user.mail_or_upn))
        if employee is not None and employee.id not in self.index.by_employee_id:
            return model.EMPLOYEE_WITHOUT_ACCOUNT, (
                f"{entra_user.mail_or_upn}: employee {employee.id} has this e-mail but no "
                "user account; create an account for the employee first, then the sync "
                "connects it"
            )
        holder = self.users_by_name.get(model.norm(entra_user.user_principal_name))
        if holder is not None:
            # An unlinked active user would have matched, so the holder is linked (typically
            # an Entra account deleted and created again with the same UPN) or deleted in Emply.
            held_by = (
                f"is linked to Entra user {holder.entra_id}"
                if holder.entra_id
                else f"is {holder.status} in Emply"
            )
            return model.USERNAME_TAKEN, (
                f"{entra_user.user_principal_name}: Emply user {holder.id} already has this "
                f"username and {held_by}; no second user is created. If it is the same person, "
                "clear that user's entraId (emply export, edit, import --replace) and the next "
                "run links it"
            )
        email_holder = self.users_by_email.get(model.norm(entra_user.mail_or_upn))
        if email_holder is not None:
            # Emply files a user by its e-mail, and an Emply state with two users of one
            # e-mail cannot be imported again: no second user gets it.
            # The words name only what this run does not change (the holder may be linked
            # by this very run), so a plan made again after applying reports the same.
            return model.EMAIL_TAKEN, (
                f"{entra_user.mail_or_upn}: Emply user {email_holder.id} already has this "
                "e-mail; no second user with it is created. If it is the same person, clear "
                "that user's entraId if it has one (emply export, edit, import --replace) and "
                "the next run links it; if not, give one of them another e-mail"
            )
        user_id = new_user_id(entra_user.id)
        if user_id in self.user_ids:
            return model.USERNAME_TAKEN, (
                f"{entra_user.user_principal_name}: an Emply user with id {user_id} exists "
                "but is not linked to this Entra user; nothing created"
            )
        created = model.EmplyUser(
            id=user_id, username=entra_user.user_principal_name,
            email=entra_user.mail_or_upn, entra_id=entra_user.id,
        )
        self.users_by_name[model.norm(entra_user.user_principal_name)] = created
        self.users_by_email[model.norm(entra_user.mail_or_upn)] = created
        self.user_ids.add(user_id)
        return None


def new_user_id(entra_id: str) -> str:
    """Deterministic, so a run that crashed after creating a user does not create it twice."""
    return f"entra-{entra_id.lower()}"
