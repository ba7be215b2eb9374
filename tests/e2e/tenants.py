"""Tenant files and Emply state files shaped as docs/files.md says."""

from __future__ import annotations

import copy
from typing import Any

TENANT_ID = "6d3f1a52-7c1e-4b8a-9d2e-0f4c5b6a7e81"
G_EMPLOYEE = "10000000-0000-4000-8000-000000000001"
G_HR = "10000000-0000-4000-8000-000000000002"


def uid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def entra_user(n: int, name: str, **kw: Any) -> dict[str, Any]:
    first, _, last = name.partition(" ")
    login = f"{first}.{last}".lower()
    user = {
        "id": uid(n), "userPrincipalName": f"{login}@contoso.com",
        "mail": f"{first}.{last}@contoso.com", "displayName": name, "givenName": first,
        "surname": last, "accountEnabled": True, "onPremisesSyncEnabled": None,
        "jobTitle": None, "department": None, "mobilePhone": None,
    }
    user.update(kw)
    return user


def tenant(users: list[dict[str, Any]], groups: dict[str, list[str]],
           names: dict[str, str] | None = None) -> dict[str, Any]:
    names = names or {G_EMPLOYEE: "Employee", G_HR: "HR"}
    return {
        "organization": {"id": TENANT_ID, "displayName": "Contoso",
                         "onPremisesSyncEnabled": False,
                         "verifiedDomains": [{"name": "contoso.com", "isDefault": True}]},
        "users": users,
        "groups": [{"id": g, "displayName": names.get(g, g), "members": m}
                   for g, m in groups.items()],
    }


ROLES = [
    {"id": "administrator", "name": "Administrator", "administrator": True},
    {"id": "employee", "name": "Employee", "administrator": False},
    {"id": "hr", "name": "HR", "administrator": False},
    {"id": "manager", "name": "Manager", "administrator": False},
    {"id": "new_employee", "name": "New employee", "administrator": False},
]


def emply_state(users: list[dict[str, Any]] | None = None,
                employees: list[dict[str, Any]] | None = None,
                **settings: Any) -> dict[str, Any]:
    base = {
        "enabled": True, "tenantId": TENANT_ID,
        "groups": [{"groupId": G_EMPLOYEE, "roleId": "employee"},
                   {"groupId": G_HR, "roleId": "hr"}],
        "syncRoles": True, "defaultRoleId": "employee", "allowedDomains": [],
        "writeBack": {"create": False, "update": False, "delete": False},
        "calendarSync": False, "photoSync": False,
        "deactivationGuard": {"maxCount": 50, "maxPercent": 20},
    }
    base.update(settings)
    return {"settings": base, "roles": copy.deepcopy(ROLES), "users": users or [],
            "employees": employees or [], "calendars": [], "events": [], "outboundEvents": []}


def staff(n: int) -> list[dict[str, Any]]:
    return [entra_user(100 + i, f"Person{i} Staff") for i in range(n)]
