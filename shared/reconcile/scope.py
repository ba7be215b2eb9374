"""R2: who is in scope, and through which configured groups.

Nested groups are resolved from direct memberships held in the snapshot, so
the sync never asks Graph for transitive members group by group. Cycles are
harmless: each group is visited once per configured group.
"""

from __future__ import annotations

from shared.reconcile import model


def transitive_user_members(
    snapshot: model.EntraSnapshot, group_id: str
) -> frozenset[str]:
    """User ids reachable from `group_id` through nested groups (empty if the group is gone)."""
    if group_id not in snapshot.groups:
        return frozenset()
    users: set[str] = set()
    seen = {group_id}
    stack = [group_id]
    while stack:
        group = snapshot.groups[stack.pop()]
        for member in group.members:
            if member in snapshot.groups:
                if member not in seen:
                    seen.add(member)
                    stack.append(member)
            else:
                users.add(member)
    return frozenset(users)


def configured_groups_by_user(
    snapshot: model.EntraSnapshot, settings: model.Settings
) -> dict[str, tuple[str, ...]]:
    """Entra user id → the configured groups it is in (directly or nested), in settings order."""
    by_user: dict[str, list[str]] = {}
    for mapping in settings.groups:
        for user_id in transitive_user_members(snapshot, mapping.group_id):
            groups = by_user.setdefault(user_id, [])
            if mapping.group_id not in groups:
                groups.append(mapping.group_id)
    return {user_id: tuple(groups) for user_id, groups in by_user.items()}


def domain_allowed(user: model.EntraUser, settings: model.Settings) -> bool:
    if not settings.allowed_domains:
        return True
    return model.upn_domain(user.user_principal_name) in settings.allowed_domain_keys


def domain_kept(
    user: model.EntraUser, linked_domain: str | None, settings: model.Settings
) -> bool:
    """R6 for a linked user: its UPN domain is allowed, and with `allowedDomains` empty
    it is still the domain it had when linked ("the user domain has been changed"). A
    link with no recorded domain keeps its current one (recorded by this run)."""
    if settings.allowed_domains:
        return domain_allowed(user, settings)
    return linked_domain is None or model.upn_domain(user.user_principal_name) == model.norm(
        linked_domain
    )


def in_scope(
    user: model.EntraUser | None,
    groups: tuple[str, ...],
    settings: model.Settings,
) -> bool:
    """R2: exists, enabled, in at least one configured group, domain allowed."""
    return (
        user is not None
        and user.account_enabled
        and bool(groups)
        and domain_allowed(user, settings)
    )


def settings_problems(entra: model.EntraSnapshot, emply: model.EmplySnapshot,
                      settings: model.Settings) -> list[model.Problem]:
    """R2/R11: configured groups the tenant lacks, and roles Emply does not know."""
    problems: list[model.Problem] = []
    known_roles = {r.id for r in emply.roles}
    for mapping in settings.groups:
        if mapping.group_id not in entra.groups:
            problems.append(
                model.Problem(
                    model.GROUP_NOT_FOUND,
                    f"configured group {mapping.group_id} does not exist in tenant "
                    f"{entra.tenant_id}: it gives no one scope or roles",
                    rule="R2",
                )
            )
        if known_roles and mapping.role_id is not None and mapping.role_id not in known_roles:
            problems.append(
                model.Problem(
                    model.UNKNOWN_ROLE,
                    f"configured group {mapping.group_id} maps to role {mapping.role_id!r}, "
                    "which does not exist in Emply",
                    rule="R11",
                )
            )
    return problems
