"""R11 over one plan: each user's roles reconciled against its own basis, and the bases
kept for the users whose roles a plan does not reconcile.

`roles.decide_roles` is the rule for one user; this keeps what a plan needs around it:
the basis a user has (its own, or for a user linked before bases were kept per user,
the run-wide mapping of the last run that reconciled roles), one shared basis per set
of groups (100,000 users have a few dozen distinct ones, and each dict costs memory),
and which users a plan has reconciled.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from shared.reconcile import model, roles

Basis = Mapping[str, str | None]


@dataclasses.dataclass(frozen=True, slots=True)
class Reconciled:
    """What reconciling one user's roles gives: a `set_roles` change, the basis to keep
    (None: unchanged), or a skip (an employee profile controls its roles)."""

    change: model.Change | None = None
    basis: Basis | None = None
    skipped: str | None = None


class RoleSync:
    def __init__(self, settings: model.Settings, previous_mapping: Basis | None,
                 admin_roles: frozenset[str]) -> None:
        self.settings = settings
        self.previous_mapping = previous_mapping
        self.admin_roles = admin_roles
        self.reconciled: set[str] = set()
        self._bases: dict[tuple[str, ...], dict[str, str | None]] = {}

    def basis(self, groups: tuple[str, ...]) -> dict[str, str | None]:
        """The basis for users in `groups` now, one shared (read-only) dict per set."""
        basis = self._bases.get(groups)
        if basis is None:
            basis = self._bases[groups] = roles.basis_of(groups, self.settings.mapping)
        return basis

    def reconcile(self, user: model.EmplyUser, entra_user: model.EntraUser,
                  groups: tuple[str, ...]) -> Reconciled:
        """Steps 1–4 of R11 for a linked active user in `groups`."""
        if user.employee_id:
            return Reconciled(skipped=model.EMPLOYEE_PROFILE_CONTROLS_ROLES)
        decision = roles.decide_roles(user.roles, groups, self.settings.mapping,
                                      self._basis_of(user), self.admin_roles)
        self.reconciled.add(user.id)
        basis = self.basis(groups)
        change = None
        if decision.changed_from(user.roles):
            change = model.Change(
                model.SET_ROLES, "R11", decision.reason, user.id, entra_user.id,
                {"roles": list(user.roles)}, {"roles": list(decision.roles)},
                f"FAQ case {decision.case}: {decision.explanation}")
        return Reconciled(change, basis if basis != user.role_basis else None)

    def seed(self, user: model.EmplyUser, groups: tuple[str, ...]) -> Basis | None:
        """The basis to keep for a linked user whose roles this plan does not reconcile
        (deactivated, or roles off) and that has none yet, so a mapping change made
        meanwhile is applied when its roles are next reconciled (case 2D), not lost."""
        # Users with an employee profile never have their roles reconciled (case 1).
        if user.role_basis is not None or user.employee_id or user.id in self.reconciled:
            return None
        previous = self.previous_mapping
        if previous is None and self.settings.sync_roles:
            # Roles are reconciled for the first time: the others' basis is this mapping.
            previous = self.settings.mapping
        if previous is not None and groups:
            return {g: previous[g] for g in groups if g in previous}
        return None

    def _basis_of(self, user: model.EmplyUser) -> Basis | None:
        if user.role_basis is not None:
            return user.role_basis
        previous = self.previous_mapping
        if previous is None or not user.sync_groups:
            return None
        return {g: previous[g] for g in user.sync_groups if g in previous}
