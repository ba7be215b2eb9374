"""R11: roles, exactly as the FAQ's "Synchronize roles" cases (1, 2A–2D).

For a linked, active user without an employee profile, with role sync on:
  step 2: against the user's basis (the group → role mapping of its groups when
          its roles were last reconciled, kept per user): a group whose role
          changed o → n makes it lose o unless another of its groups still maps
          to o, and gain n (case 2D); a group newly joined, configured or mapped
          only adds its role ("more groups give more roles");
  step 3 (2A, 2B, 2C): with M the roles mapped from the user's groups and R
          its roles, M ⊆ R leaves R alone, otherwise R becomes exactly M;
  step 4: an administrator role is never removed, in any step.
Role order is kept stable (existing roles first, new ones in mapping order)
so that reports and exports do not churn.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from shared.reconcile import model


@dataclasses.dataclass(frozen=True, slots=True)
class RoleDecision:
    roles: tuple[str, ...]
    case: str
    """Which FAQ case applied: '2A/2B' (subset, unchanged), '2C' (replaced), '2D' (mapping
    changed), 'more_groups' (a new group's role added), joined by '+' when several did."""
    explanation: str

    @property
    def reason(self) -> str:
        """The reason code a `set_roles` change carries."""
        return "more_groups" if self.case == "more_groups" else f"case_{self.case}"

    def changed_from(self, before: tuple[str, ...]) -> bool:
        return self.roles != before


def mapped_roles(groups: tuple[str, ...], mapping: Mapping[str, str | None]) -> tuple[str, ...]:
    """Roles mapped from `groups`, in group order, without repeats (groups may map to none)."""
    roles: list[str] = []
    for group in groups:
        role = mapping.get(group)
        if role is not None and role not in roles:
            roles.append(role)
    return tuple(roles)


def roles_for_new_user(groups: tuple[str, ...], settings: model.Settings) -> tuple[str, ...]:
    """R4/R11: mapped roles when role sync is on (default role if none), else the default role."""
    if settings.sync_roles:
        return mapped_roles(groups, settings.mapping) or (settings.default_role_id,)
    return (settings.default_role_id,)


def basis_of(groups: tuple[str, ...], mapping: Mapping[str, str | None]) -> dict[str, str | None]:
    """The R11 basis a run that reconciles a user's roles leaves: its groups' roles now."""
    return {group: mapping.get(group) for group in groups}


def decide_roles(
    current: tuple[str, ...],
    groups: tuple[str, ...],
    mapping: Mapping[str, str | None],
    basis: Mapping[str, str | None] | None,
    admin_roles: frozenset[str],
) -> RoleDecision:
    """Steps 2–4 of R11 for one user without an employee profile, against `basis` (the
    group → role mapping of its groups when its roles were last reconciled; None: never,
    then step 2 has nothing to compare with)."""
    roles = list(current)
    cases: list[str] = []
    notes: list[str] = []
    if basis is not None:
        _changed_since_basis(roles, cases, notes, groups, mapping, basis, admin_roles)

    # Step 3: the subset rule.
    wanted = mapped_roles(groups, mapping)
    if set(wanted) <= set(roles):
        if not cases:
            cases.append("2A/2B")
            notes.append(
                "the roles mapped from the user's groups are a subset of its roles: "
                "nothing to change (extra roles stay)"
            )
    else:
        # Step 4: administrators keep their administrator roles.
        kept_admin = [r for r in roles if r in admin_roles and r not in wanted]
        roles = [r for r in roles if r in wanted] + [
            r for r in wanted if r not in roles
        ]
        roles = kept_admin + roles
        cases = [c for c in cases if c != "more_groups"] + ["2C"]
        notes.append(
            "the user lacked roles mapped from its groups: roles set to exactly the mapped "
            "roles" + (" (administrator role kept)" if kept_admin else "")
        )
    return RoleDecision(tuple(roles), "+".join(cases), "; ".join(notes))


def _changed_since_basis(roles: list[str], cases: list[str], notes: list[str],
                         groups: tuple[str, ...], mapping: Mapping[str, str | None],
                         basis: Mapping[str, str | None], admin_roles: frozenset[str]) -> None:
    """Step 2 of R11: what changed since the user's roles were last reconciled, applied to
    `roles` in place (with the cases and notes it adds)."""
    for group in groups:
        new = mapping.get(group)
        if group not in basis or basis[group] is None:
            # Newly joined, newly configured or newly mapped: "more groups give more
            # roles"; nothing is lost.
            if new is not None and new not in roles:
                roles.append(new)
                if "more_groups" not in cases:
                    cases.append("more_groups")
                notes.append(f"group {group} gives role {new!r}")
            continue
        old = basis[group]
        if old == new:
            continue
        still_mapped = any(mapping.get(g) == old for g in groups)
        if old is not None and old in roles and not still_mapped and old not in admin_roles:
            roles.remove(old)
        if new is not None and new not in roles:
            roles.append(new)
        if "2D" not in cases:
            cases.insert(0, "2D")
        notes.append(f"group {group} now maps to {new!r} instead of {old!r}")
