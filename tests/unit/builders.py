"""Small builders so each FAQ case reads like the FAQ."""

from __future__ import annotations

import datetime as dt
from typing import Any

from shared.reconcile import model, planner

TENANT = "11111111-1111-1111-1111-111111111111"
NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)


def entra_user(
    uid: str,
    upn: str | None = None,
    *,
    mail: str | None = None,
    enabled: bool = True,
    name: str | None = None,
) -> model.EntraUser:
    upn = upn or f"{uid}@contoso.com"
    return model.EntraUser(
        id=uid,
        user_principal_name=upn,
        mail=mail if mail is not None else upn,
        display_name=name or uid,
        account_enabled=enabled,
    )


def tenant(
    users: list[model.EntraUser],
    groups: dict[str, list[str]],
    tenant_id: str = TENANT,
) -> model.EntraSnapshot:
    return model.EntraSnapshot(
        tenant_id=tenant_id,
        users={u.id: u for u in users},
        groups={
            gid: model.EntraGroup(gid, gid.title(), frozenset(members))
            for gid, members in groups.items()
        },
    )


def settings(
    mapping: dict[str, str | None],
    *,
    sync_roles: bool = True,
    default_role: str = "employee",
    allowed_domains: tuple[str, ...] = (),
    guard: tuple[int, float] | tuple[int, float, int] = (50, 20, 10),
    enabled: bool = True,
    tenant_id: str = TENANT,
) -> model.Settings:
    return model.Settings(
        tenant_id=tenant_id,
        groups=tuple(model.GroupMapping(g, r) for g, r in mapping.items()),
        default_role_id=default_role,
        enabled=enabled,
        sync_roles=sync_roles,
        allowed_domains=allowed_domains,
        guard=model.DeactivationGuard(*guard),
    )


def user_doc(u: model.EmplyUser) -> dict[str, Any]:
    """A user as the store holds it (what apply writes and convert reads back)."""
    return {
        "id": u.id, "username": u.username, "email": u.email, "status": u.status,
        "roles": list(u.roles), "employeeId": u.employee_id, "source": u.source,
        "entraId": u.entra_id, "tenantId": u.link_tenant_id,
        "deactivatedBy": u.deactivated_by, "deactivationReason": u.deactivation_reason,
        "syncGroups": list(u.sync_groups), "roleBasis": u.role_basis,
        "linkedDomain": u.linked_domain,
    }


def emply_user(uid: str, **kw: Any) -> model.EmplyUser:
    kw.setdefault("username", f"{uid}@contoso.com")
    kw.setdefault("email", kw["username"])
    if "roles" in kw:
        kw["roles"] = tuple(kw["roles"])
    if "sync_groups" in kw:
        kw["sync_groups"] = tuple(kw["sync_groups"])
    return model.EmplyUser(id=uid, **kw)


ROLES = (
    model.Role("employee", "Employee"),
    model.Role("hr", "HR"),
    model.Role("manager", "Manager"),
    model.Role("new_employee", "New employee"),
    model.Role("sales", "Sales"),
    model.Role("administrator", "Administrator", administrator=True),
)


def run(
    entra: model.EntraSnapshot,
    users: list[model.EmplyUser],
    cfg: model.Settings,
    *,
    employees: tuple[model.Employee, ...] = (),
    previous_mapping: dict[str, str | None] | None = None,
    approve: int | None = None,
    now: dt.datetime = NOW,
) -> model.Plan:
    return planner.plan(
        entra,
        model.EmplySnapshot(tuple(users), employees, ROLES),
        cfg,
        model.SyncState(previous_mapping=previous_mapping),
        now,
        approve_deactivations=approve,
    )


def kinds(plan: model.Plan) -> list[tuple[str, str | None, str]]:
    return [(c.kind, c.user_id, c.reason) for c in plan.changes]
