"""R11: roles, exactly as the FAQ's "Synchronize roles" cases (1, 2A–2D).

For a linked, active user without an employee profile, with role sync on:
  step 2 (case 2D): for every configured group whose role changed o → n since
          the last successful run, members lose o unless another of their
          groups still maps to o, and gain n;
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
    """Which FAQ case applied: '1', '2A/2B' (subset, unchanged), '2C' (replaced), '2D'."""
    explanation: str

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


def decide_roles(
    current: tuple[str, ...],
    groups: tuple[str, ...],
    mapping: Mapping[str, str | None],
    previous_mapping: Mapping[str, str | None] | None,
    admin_roles: frozenset[str],
) -> RoleDecision:
    """Steps 2–4 of R11 for one user without an employee profile."""
    roles = list(current)
    case = ""
    notes: list[str] = []

    # Step 2: mapping changes since the last successful run (case 2D).
    if previous_mapping is not None:
        for group in groups:
            if group not in previous_mapping:
                continue
            old, new = previous_mapping[group], mapping.get(group)
            if old == new:
                continue
            still_mapped = any(mapping.get(g) == old for g in groups)
            if old is not None and old in roles and not still_mapped and old not in admin_roles:
                roles.remove(old)
            if new is not None and new not in roles:
                roles.append(new)
            case = "2D"
            notes.append(f"group {group} now maps to {new!r} instead of {old!r}")

    # Step 3: the subset rule.
    wanted = mapped_roles(groups, mapping)
    if set(wanted) <= set(roles):
        if not case:
            case = "2A/2B"
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
        case = "2C" if case == "" else case + "+2C"
        notes.append(
            "the user lacked roles mapped from its groups: roles set to exactly the mapped "
            "roles" + (" (administrator role kept)" if kept_admin else "")
        )
    return RoleDecision(tuple(roles), case, "; ".join(notes))
