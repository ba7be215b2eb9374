"""R11 in the plan: a linked, active user's roles against its basis, and the bases
kept for users whose roles a run does not reconcile (`shared.reconcile.roles` decides
the roles themselves)."""

from __future__ import annotations

from collections.abc import Mapping

from shared.reconcile import model, roles
from shared.reconcile.plan_state import PlanState


class RoleSync(PlanState):
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
