"""plan(): the whole sync decided as data.

`plan(entra, emply, settings, state, now)` reads two snapshots and returns a
`Plan`: the changes to make, each with its rule and reason code, the
deactivations the guard holds back, and the problems to report. It never does
I/O, so `--dry-run`, `explain`, the guard and the tests all read the same plan
that apply executes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from shared.reconcile import lifecycle, matching, model, roles, scope


def plan(
    entra: model.EntraSnapshot,
    emply: model.EmplySnapshot,
    settings: model.Settings,
    state: model.SyncState,
    now: dt.datetime,
    *,
    approve_deactivations: int | None = None,
) -> model.Plan:
    planner = _Planner(entra, emply, settings, state, now)
    return planner.run(approve_deactivations)


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
        self.bookkeeping: list[model.GroupsUpdate] = []

    # -- the run -----------------------------------------------------------------

    def run(self, approve_deactivations: int | None) -> model.Plan:
        self._check_settings_against_tenant()
        held: tuple[model.Change, ...] = ()
        if self.settings.enabled:
            claimed = self._match_in_scope_users()
            self._deactivate_out_of_scope(claimed)
            held = self._guard(approve_deactivations)
        self.changes.extend(lifecycle.employee_status_changes(self.emply.employees, self.now))
        next_mapping = self.settings.mapping if self.settings.sync_roles else None
        return model.Plan(
            changes=tuple(self.changes),
            held=held,
            errors=tuple(self.problems),
            skips=dict(self.skips),
            bookkeeping=tuple(self.bookkeeping),
            next_state=model.SyncState(previous_mapping=next_mapping),
        )

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
        """Links, creates, reactivates and sets roles; returns the Emply user ids kept in scope."""
        index = matching.UserIndex(self.emply.users, self.settings.tenant_id)
        employees_by_email = {model.norm(e.email): e for e in self.emply.employees}
        claimed: dict[str, str] = {}  # Emply user id → Entra id
        for entra_id in sorted(self.groups_by_user):
            entra_user = self.entra.users.get(entra_id)
            groups = self.groups_by_user[entra_id]
            if entra_user is None or not scope.in_scope(entra_user, groups, self.settings):
                continue
            found = index.find(entra_user)
            if found.ambiguous:
                self._ambiguous(entra_user, found.step, found.ambiguous, claimed)
                continue
            if found.user is None:
                self._create_or_refuse(entra_user, groups, index, employees_by_email)
                continue
            if found.user.id in claimed:
                self._ambiguous(entra_user, found.step, (found.user,), claimed)
                continue
            claimed[found.user.id] = entra_id
            self._keep_linked(found.user, entra_user, groups, found.step)
        return set(claimed)

    def _ambiguous(
        self,
        entra_user: model.EntraUser,
        step: int,
        candidates: Iterable[model.EmplyUser],
        claimed: dict[str, str],
    ) -> None:
        what = {1: "Entra object id", 2: "username = UPN", 3: "e-mail = Entra mail"}[step]
        ids = ", ".join(sorted(u.id for u in candidates))
        others = [claimed[u.id] for u in candidates if u.id in claimed]
        extra = f" (already matched to Entra user {others[0]})" if others else ""
        self.problems.append(
            model.Problem(
                model.AMBIGUOUS_MATCH,
                f"{entra_user.user_principal_name}: more than one Emply user matches by "
                f"{what}: {ids}{extra}; nothing changed",
                entra_id=entra_user.id,
                rule="R3",
            )
        )
        # Candidates are not deactivated for being unmatched: a person must decide.
        for user in candidates:
            claimed.setdefault(user.id, entra_user.id)

    def _create_or_refuse(
        self,
        entra_user: model.EntraUser,
        groups: tuple[str, ...],
        index: matching.UserIndex,
        employees_by_email: dict[str, model.Employee],
    ) -> None:
        employee = employees_by_email.get(model.norm(entra_user.mail_or_upn))
        if employee is not None and employee.id not in index.by_employee_id:
            self.problems.append(
                model.Problem(
                    model.EMPLOYEE_WITHOUT_ACCOUNT,
                    f"{entra_user.mail_or_upn}: employee {employee.id} has this e-mail but no "
                    "user account; create an account for the employee first, then the sync "
                    "connects it",
                    entra_id=entra_user.id,
                    rule="R4",
                )
            )
            return
        user_id = new_user_id(entra_user.id)
        user_roles = roles.roles_for_new_user(groups, self.settings)
        after = {
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
        }
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
            how = {1: "Entra object id", 2: "username = UPN", 3: "e-mail = Entra mail"}[step]
            self.changes.append(
                model.Change(
                    model.LINK_USER,
                    "R3",
                    model.LINK_USER,
                    user.id,
                    entra_user.id,
                    {"entraId": user.entra_id, "tenantId": user.link_tenant_id},
                    {
                        "entraId": entra_user.id,
                        "tenantId": self.settings.tenant_id,
                        "linkedAt": self.stamp,
                    },
                    f"linked to Entra user {entra_user.user_principal_name} by {how}",
                )
            )
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
            self.bookkeeping.append(model.GroupsUpdate(user.id, groups))
        if status == "active" and self.settings.sync_roles:
            self._sync_roles(user, entra_user, groups)

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
            self.state.previous_mapping,
            self.admin_roles,
        )
        if decision.changed_from(user.roles):
            self.changes.append(
                model.Change(
                    model.SET_ROLES,
                    "R11",
                    f"case_{decision.case}",
                    user.id,
                    entra_user.id,
                    {"roles": list(user.roles)},
                    {"roles": list(decision.roles)},
                    f"FAQ case {decision.case}: {decision.explanation}",
                )
            )

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

    def _guard(self, approved: int | None) -> tuple[model.Change, ...]:
        count = len(self.deactivations)
        linked_active = sum(
            1 for u in self.emply.users if u.entra_id is not None and u.status == "active"
        )
        guard = self.settings.guard
        over = count > guard.max_count or count * 100 > guard.max_percent * linked_active
        if not over or approved == count:
            self.changes.extend(self.deactivations)
            return ()
        limit = (
            f"{count} deactivations exceed the guard (maxCount {guard.max_count}, "
            f"maxPercent {guard.max_percent:g}% of {linked_active} linked active users)"
        )
        if approved is not None:
            self.problems.append(
                model.Problem(
                    model.APPROVAL_MISMATCH,
                    f"approval was for {approved} deactivations but this run would make {count}; "
                    "nothing was approved",
                    rule="R7",
                )
            )
        self.problems.append(
            model.Problem(
                model.HELD_BY_GUARD,
                f"{limit}: held; approve with --approve-deactivations {count} "
                f'or {{"approveDeactivations": {count}}}',
                rule="R7",
            )
        )
        return tuple(self.deactivations)

    def _group_names(self, groups: Iterable[str]) -> str:
        names = [lifecycle.group_name(self.entra, g) for g in groups]
        return ", ".join(names) or "no configured group"


def new_user_id(entra_id: str) -> str:
    """Deterministic, so a run that crashed after creating a user does not create it twice."""
    return f"entra-{entra_id.lower()}"
