"""R6 (why a linked user leaves scope) and R8 (employee status by resignation date)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from shared.reconcile import matching, model, scope


def deactivation_reason(
    user: model.EmplyUser,
    entra: model.EntraSnapshot,
    settings: model.Settings,
    groups_now: tuple[str, ...],
) -> tuple[str, str]:
    """The first R6 reason that applies, and the same in words (for reports and explain)."""
    if matching.is_stale_link(user, settings.tenant_id):
        return model.TENANT_CHANGED, (
            f"the user was linked in tenant {user.link_tenant_id}, but the integration is now "
            f"connected to tenant {settings.tenant_id} and no user there matches it"
        )
    entra_user = entra.users.get(user.entra_id or "")
    if entra_user is None:
        return model.DELETED_IN_ENTRA, "the Entra user was deleted"
    if not entra_user.account_enabled:
        return model.DISABLED_IN_ENTRA, "the Entra account was disabled (accountEnabled false)"
    if not scope.domain_kept(entra_user, user.linked_domain, settings):
        domain = model.upn_domain(entra_user.user_principal_name)
        return model.DOMAIN_CHANGED, (
            f"the user's domain {domain} is not one of the allowed domains "
            f"({', '.join(settings.allowed_domains)})"
            if settings.allowed_domains
            else f"the user's domain changed from {user.linked_domain} (when it was linked) "
            f"to {domain}; with no allowed domains set, the domain it was linked with is the "
            "allowed one"
        )
    if groups_now:
        # In a configured group yet out of scope: only possible through the checks above.
        return model.REMOVED_FROM_GROUPS, "the user is no longer in scope"
    gone = [g for g in user.sync_groups if g not in entra.groups or g not in settings.group_ids]
    if user.sync_groups and len(gone) == len(user.sync_groups):
        deleted = [g for g in gone if g not in entra.groups]
        unconfigured = [group_name(entra, g) for g in gone if g in entra.groups]
        parts = []
        if deleted:
            parts.append(f"deleted in Entra: {', '.join(deleted)}")
        if unconfigured:
            parts.append(f"removed from the integration's settings: {', '.join(unconfigured)}")
        return model.GROUP_REMOVED, (
            "every configured group the user was in is gone (" + "; ".join(parts) + ")"
        )
    return model.REMOVED_FROM_GROUPS, (
        "the Entra user was removed from the configured group(s)"
        + (
            f" it was in ({', '.join(group_name(entra, g) for g in user.sync_groups)})"
            if user.sync_groups
            else ""
        )
    )


def group_name(entra: model.EntraSnapshot, group_id: str) -> str:
    """A group's display name for messages; the id when the group is gone."""
    group = entra.groups.get(group_id)
    return (group.display_name or group_id) if group else group_id


def employee_target_status(employee: model.Employee, today: dt.date) -> str:
    """R8: a future resignation date means pending, a reached one archived; a pending
    employee whose date was removed is active again; archived is final for the sync."""
    if employee.status == "archived":
        return "archived"
    if employee.resignation_date is None:
        return "active" if employee.status == "pending" else employee.status
    return "pending" if employee.resignation_date > today else "archived"


def employee_status_changes(
    employees: Iterable[model.Employee], now: dt.datetime
) -> list[model.Change]:
    today = now.astimezone(dt.UTC).date()
    changes = []
    for employee in employees:
        target = employee_target_status(employee, today)
        if target == employee.status:
            continue
        date = employee.resignation_date.isoformat() if employee.resignation_date else ""
        words = {
            "pending": f"resignation date {date} is in the future: pending until then",
            "archived": f"resignation date {date} has been reached: archived",
            "active": "the resignation date was removed: active again",
        }[target]
        changes.append(
            model.Change(
                model.EMPLOYEE_STATUS,
                "R8",
                target,
                None,
                None,
                {"status": employee.status},
                {"status": target},
                words,
                employee_id=employee.id,
            )
        )
    return changes
